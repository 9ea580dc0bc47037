//! Pretty JSON with short arrays of scalars kept on one line.
//!
//! `serde_json`'s pretty printer puts every array element on its own line, which turns a
//! 100×100 confusion matrix into 10 000 lines. [`to_string_pretty_compact`] indents objects like
//! the pretty printer but writes any array whose first element is a scalar on a single line
//! (`[1, 2, 3]`), so each confusion-matrix row and each `per_class` vector is one line. Key order
//! is the struct's field order.

use std::io;

use serde::Serialize;
use serde_json::ser::{Formatter, Serializer};

#[derive(Clone, Copy)]
enum Frame {
    Object {
        has_value: bool,
    },
    /// `compact`: `None` until the first element shows whether it is a scalar.
    Array {
        compact: Option<bool>,
        has_value: bool,
    },
}

#[derive(Default)]
struct CompactArrays {
    stack: Vec<Frame>,
    /// The first element of the innermost array is about to be written and its kind is unknown.
    pending_first: bool,
}

const INDENT: &[u8] = b"  ";

impl CompactArrays {
    fn newline<W: ?Sized + io::Write>(&self, w: &mut W, depth: usize) -> io::Result<()> {
        w.write_all(b"\n")?;
        for _ in 0..depth {
            w.write_all(INDENT)?;
        }
        Ok(())
    }

    /// Called before any value is written: settles a pending first array element.
    fn before_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        container: bool,
    ) -> io::Result<()> {
        if !self.pending_first {
            return Ok(());
        }
        self.pending_first = false;
        let depth = self.stack.len();
        if let Some(Frame::Array { compact, .. }) = self.stack.last_mut() {
            *compact = Some(!container);
            if container {
                self.newline(w, depth)?;
            }
        }
        Ok(())
    }
}

macro_rules! scalar {
    ($($name:ident($ty:ty)),* $(,)?) => {$(
        fn $name<W: ?Sized + io::Write>(&mut self, w: &mut W, value: $ty) -> io::Result<()> {
            self.before_value(w, false)?;
            serde_json::ser::CompactFormatter.$name(w, value)
        }
    )*};
}

impl Formatter for CompactArrays {
    scalar!(
        write_bool(bool),
        write_i8(i8),
        write_i16(i16),
        write_i32(i32),
        write_i64(i64),
        write_i128(i128),
        write_u8(u8),
        write_u16(u16),
        write_u32(u32),
        write_u64(u64),
        write_u128(u128),
        write_f32(f32),
        write_f64(f64),
        write_number_str(&str),
        write_byte_array(&[u8]),
    );

    fn write_null<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.before_value(w, false)?;
        w.write_all(b"null")
    }

    fn begin_string<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.before_value(w, false)?;
        w.write_all(b"\"")
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.before_value(w, true)?;
        self.stack.push(Frame::Array {
            compact: None,
            has_value: false,
        });
        w.write_all(b"[")
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        let depth = self.stack.len();
        if let Some(Frame::Array { compact, has_value }) = self.stack.last_mut() {
            *has_value = true;
            match (first, *compact) {
                (true, _) => self.pending_first = true,
                (false, Some(true)) => w.write_all(b", ")?,
                (false, _) => {
                    w.write_all(b",")?;
                    self.newline(w, depth)?;
                }
            }
        }
        Ok(())
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        if let Some(Frame::Array { compact, has_value }) = self.stack.pop() {
            if has_value && compact == Some(false) {
                self.newline(w, self.stack.len())?;
            }
        }
        w.write_all(b"]")
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.before_value(w, true)?;
        self.stack.push(Frame::Object { has_value: false });
        w.write_all(b"{")
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if !first {
            w.write_all(b",")?;
        }
        if let Some(Frame::Object { has_value }) = self.stack.last_mut() {
            *has_value = true;
        }
        self.newline(w, self.stack.len())
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        if let Some(Frame::Object { has_value }) = self.stack.pop() {
            if has_value {
                self.newline(w, self.stack.len())?;
            }
        }
        w.write_all(b"}")
    }
}

/// Serialises `value` as indented JSON with arrays of scalars on one line.
pub(crate) fn to_string_pretty_compact<T: Serialize + ?Sized>(
    value: &T,
) -> serde_json::Result<String> {
    let mut buf = Vec::new();
    let mut ser = Serializer::with_formatter(&mut buf, CompactArrays::default());
    value.serialize(&mut ser)?;
    // The serializer only writes valid UTF-8.
    Ok(String::from_utf8(buf)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn layout_and_round_trip() {
        let v = json!({
            "a": 1.5,
            "names": ["x", "y, \"z\""],
            "empty": [],
            "nested": {"m": [[1, 2], [3, 4]], "o": {}},
            "objs": [{"k": null}, {"k": true}],
            "none": null
        });
        let s = to_string_pretty_compact(&v).unwrap();
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
        // serde_json's Value orders keys alphabetically.
        let expected = r#"{
  "a": 1.5,
  "empty": [],
  "names": ["x", "y, \"z\""],
  "nested": {
    "m": [
      [1, 2],
      [3, 4]
    ],
    "o": {}
  },
  "none": null,
  "objs": [
    {
      "k": null
    },
    {
      "k": true
    }
  ]
}"#;
        assert_eq!(s, expected);
    }
}
