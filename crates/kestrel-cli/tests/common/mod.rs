//! Helpers shared by the end-to-end tests of the `kestrel` binary.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// The result of one `kestrel` run.
pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with the whole transcript unless the run exited 0.
    pub fn ok(self) -> Self {
        assert!(
            self.success(),
            "kestrel {:?} failed:\n{}",
            self.args,
            self.transcript()
        );
        self
    }

    pub fn transcript(&self) -> String {
        format!(
            "exit code: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// The run failed with a normal error exit (not a crash), never panicked, and its error
    /// message names every one of `needles` (typically the offending path).
    pub fn fails_cleanly_naming(&self, needles: &[&str]) {
        let t = self.transcript();
        assert!(
            !self.success(),
            "kestrel {:?} should have failed:\n{t}",
            self.args
        );
        // A Rust panic exits with 101; a signal gives no code. A clean error exits with 1.
        assert_eq!(
            self.code,
            Some(1),
            "kestrel {:?}: expected exit code 1:\n{t}",
            self.args
        );
        assert!(
            !self.stderr.contains("panicked"),
            "kestrel {:?} panicked:\n{t}",
            self.args
        );
        assert!(
            !self.stderr.contains("RUST_BACKTRACE"),
            "kestrel {:?} printed a panic backtrace hint:\n{t}",
            self.args
        );
        assert!(
            self.stderr.contains("error"),
            "kestrel {:?}: no error message:\n{t}",
            self.args
        );
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "kestrel {:?}: stderr does not mention {n:?}:\n{t}",
                self.args
            );
        }
    }
}

/// Runs the `kestrel` binary with `args`. HOME points at a scratch folder under the target
/// directory so that nothing (the `models` stats cache, for one) lands in the real home.
pub fn kestrel<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    kestrel_with_env(args, &[], &[])
}

/// [`kestrel`] with the variables `set` added to its environment and `remove` taken out.
pub fn kestrel_with_env<I, S>(args: I, set: &[(&str, &str)], remove: &[&str]) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<std::ffi::OsString> = args
        .into_iter()
        .map(|a| a.as_ref().to_os_string())
        .collect();
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kestrel-cli-home");
    std::fs::create_dir_all(&home).expect("scratch HOME");
    let mut command = Command::new(env!("CARGO_BIN_EXE_kestrel"));
    command
        .args(&args)
        .env("HOME", &home)
        .env_remove("KESTREL_LOG")
        .env_remove("RUST_BACKTRACE");
    for (k, v) in set {
        command.env(k, v);
    }
    for k in remove {
        command.env_remove(k);
    }
    let out = command.output().expect("cannot start the kestrel binary");
    Run {
        args: args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `p` as a `&str` (test paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A small deterministic generator (64-bit LCG) for pixel noise.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Lcg(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
    /// Uniform in `-amp..=amp`.
    pub fn noise(&mut self, amp: i32) -> i32 {
        (self.next_u32() % (2 * amp as u32 + 1)) as i32 - amp
    }
}

/// The classes of [`solid_color_folder`], in folder (= label) order, with their base colour.
pub const COLORS: [(&str, [u8; 3]); 3] = [
    ("blue", [20, 30, 230]),
    ("green", [25, 220, 35]),
    ("red", [225, 30, 20]),
];

/// A `size`×`size` solid-colour RGB image with ±`noise` per-channel noise.
pub fn solid_image(rgb: [u8; 3], size: u32, noise: i32, rng: &mut Lcg) -> image::RgbImage {
    image::RgbImage::from_fn(size, size, |_, _| {
        image::Rgb(rgb.map(|c| (c as i32 + rng.noise(noise)).clamp(0, 255) as u8))
    })
}

/// Writes an ImageFolder `root/{blue,green,red}/NNN.png` with `per_class` noisy 16×16
/// solid-colour images per class: trivially separable.
pub fn solid_color_folder(root: &Path, per_class: usize, seed: u64) {
    let mut rng = Lcg::new(seed);
    for (name, rgb) in COLORS {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            solid_image(rgb, 16, 12, &mut rng)
                .save(dir.join(format!("{i:03}.png")))
                .unwrap();
        }
    }
}

/// A valid PNG of `rgb`, cut to half its length: the header is fine, the pixel data is not.
pub fn write_truncated_png(path: &Path, rgb: [u8; 3]) {
    let mut bytes = Vec::new();
    let img = solid_image(rgb, 16, 40, &mut Lcg::new(7));
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(path, bytes).unwrap();
}

/// A valid baseline JPEG of a noisy 16×16 image, cut after 60% of its bytes.
pub fn write_truncated_jpeg(path: &Path, rgb: [u8; 3]) {
    let mut bytes = Vec::new();
    let img = solid_image(rgb, 16, 40, &mut Lcg::new(9));
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    bytes.truncate(bytes.len() * 6 / 10);
    std::fs::write(path, bytes).unwrap();
}

/// Reads the f32 tensor `name` from a safetensors file: (shape, values).
pub fn read_tensor(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    kestrel_models::tensor_file::read_f32(path, name).unwrap_or_else(|e| panic!("{e}"))
}

/// Writes one f32 tensor `name` of `shape` (values 0.1, 0.2, ... cycling) to a safetensors file.
pub fn write_tensor(path: &Path, name: &str, shape: &[usize]) {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|i| (i % 10) as f32 * 0.1).collect();
    kestrel_models::tensor_file::write_f32(path, name, shape, &values)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The number `key` of every line of a JSON-lines log (`train_log.jsonl`, `train_steps.jsonl`).
pub fn jsonl_column(path: &Path, key: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {l}: {e}", path.display()));
            v[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{}: no number {key} in {l}", path.display()))
        })
        .collect()
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}\n{text}", path.display()))
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}
