//! Per-sample predictions as CSV.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{EvalError, Result};
use crate::metrics::{argmax_predictions, validate_scores};

/// Quotes a CSV field when needed (RFC 4180 style): fields holding a comma, a double quote, a
/// line break or leading/trailing whitespace are wrapped in double quotes, with inner double
/// quotes doubled. Other fields are written as they are.
pub fn csv_field(s: &str) -> String {
    let needs_quotes = s.contains([',', '"', '\n', '\r'])
        || s.starts_with(char::is_whitespace)
        || s.ends_with(char::is_whitespace);
    if needs_quotes {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes one row per sample to `path`:
///
/// ```text
/// image,true_label,predicted_label,top2,prob_<class 0>,prob_<class 1>,...
/// photos/cat/1.jpg,cat,dog,dog;cat,0.25,0.75
/// ```
///
/// The `image` column is there when `images` (one path per sample) is given; `topK` holds the
/// K = min(5, classes) best classes, best first, joined by `;`. Labels are written as class names; the predicted label is the argmax of the row (ties ->
/// lowest index); probabilities are the given scores, written in shortest round-trip `f32`
/// form. Names are quoted with [`csv_field`] when needed. Missing parent directories are
/// created.
///
/// Errors on bad input (as [`crate::validate_scores`], plus `class_names.len() != num_classes`)
/// before touching the file, and on I/O failures, which name the path.
pub fn write_predictions_csv(
    path: impl AsRef<Path>,
    images: Option<&[String]>,
    labels: &[usize],
    scores: &[f32],
    num_classes: usize,
    class_names: &[String],
) -> Result<()> {
    let path = path.as_ref();
    if class_names.len() != num_classes {
        return Err(EvalError::LengthMismatch {
            what: "number of class names vs number of classes",
            expected: num_classes,
            actual: class_names.len(),
        });
    }
    validate_scores(labels, scores, num_classes)?;
    if let Some(images) = images.filter(|i| i.len() != labels.len()) {
        return Err(EvalError::LengthMismatch {
            what: "number of image paths vs number of labels",
            expected: labels.len(),
            actual: images.len(),
        });
    }
    let preds = argmax_predictions(scores, num_classes)?;
    let quoted: Vec<String> = class_names.iter().map(|n| csv_field(n)).collect();

    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| EvalError::io(parent, e))?;
    }
    let file = fs::File::create(path).map_err(|e| EvalError::io(path, e))?;
    let mut w = BufWriter::new(file);
    let io = |e| EvalError::io(path, e);

    let k = num_classes.min(5);
    if images.is_some() {
        write!(w, "image,").map_err(io)?;
    }
    write!(w, "true_label,predicted_label,top{k}").map_err(io)?;
    for name in class_names {
        write!(w, ",{}", csv_field(&format!("prob_{name}"))).map_err(io)?;
    }
    writeln!(w).map_err(io)?;
    for (i, ((row, &t), &p)) in scores
        .chunks_exact(num_classes)
        .zip(labels)
        .zip(&preds)
        .enumerate()
    {
        if let Some(images) = images {
            write!(w, "{},", csv_field(&images[i])).map_err(io)?;
        }
        // The top classes, best first, in one field: "cat;dog;fox".
        let top: Vec<&str> = crate::top_k_classes(row, k)
            .into_iter()
            .map(|c| class_names[c].as_str())
            .collect();
        write!(
            w,
            "{},{},{}",
            quoted[t],
            quoted[p],
            csv_field(&top.join(";"))
        )
        .map_err(io)?;
        for v in row {
            write!(w, ",{v}").map_err(io)?;
        }
        writeln!(w).map_err(io)?;
    }
    w.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(csv_field("cat"), "cat");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field(" x"), "\" x\"");
        assert_eq!(csv_field("two words"), "two words");
    }
}
