//! `kestrel serve` end to end: the binary on an ephemeral loopback port, spoken to over plain
//! HTTP/1.1. Its answers must be `kestrel predict`'s for the same images; the error statuses,
//! the batching (seen in the answers and in /metrics), the overload 503s and the graceful
//! shutdown on SIGTERM are checked against what the issue specifies.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{kestrel, s, Lcg};

/// A running `kestrel serve`, killed if the test fails before it is stopped.
struct Served {
    child: Option<Child>,
    addr: SocketAddr,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Served {
    fn start(extra: &[&str]) -> Served {
        let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kestrel-cli-home");
        std::fs::create_dir_all(&home).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_kestrel"))
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(extra)
            .env("HOME", &home)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start kestrel serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in the first line: {line:?}"));
        Served {
            child: Some(child),
            addr,
        }
    }

    /// SIGTERM, then the exit code.
    fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take().unwrap();
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        for _ in 0..200 {
            if let Some(st) = c.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        panic!("kestrel serve did not exit within 10 s of SIGTERM");
    }
}

/// One HTTP/1.1 exchange: (status, headers lower-cased, body).
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn request(addr: SocketAddr, method: &str, path: &str, ctype: Option<&str>, body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = ctype {
        head.push_str(&format!("Content-Type: {t}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) before reading all of a large body and close: ignore the
    // write error then; the reply is what is checked.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

fn multipart(file: &[u8], filename: &str) -> (String, Vec<u8>) {
    let boundary = "kestrelTestBoundary7MA4YWxk";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
             Content-Type: image/png\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// `n` noisy 32×32 PNGs (different sizes of crop work too: the eval transform resizes).
fn noise_pngs(dir: &Path, n: usize) -> Vec<PathBuf> {
    let mut rng = Lcg::new(7);
    (0..n)
        .map(|i| {
            let side = 28 + 4 * i as u32;
            let img = image::RgbImage::from_fn(side, side, |_, _| {
                image::Rgb([
                    (128 + rng.noise(120)) as u8,
                    (128 + rng.noise(120)) as u8,
                    (128 + rng.noise(120)) as u8,
                ])
            });
            let p = dir.join(format!("img{i}.png"));
            img.save(&p).unwrap();
            p
        })
        .collect()
}

/// The model served: a LeNet-5 checkpoint trained for one epoch on 12 images, so that `serve`
/// and `predict` load the very same weights from disk.
fn tiny_checkpoint(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    common::solid_color_folder(&data, 4, 1);
    let out = dir.join("run");
    kestrel([
        "train",
        "--model",
        "lenet5",
        "--data",
        s(&data),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--quiet",
        "--seed",
        "1",
        "--workers",
        "1",
        "--out",
        s(&out),
    ])
    .ok();
    out
}

/// Top-k (index, probability) pairs of a predict/serve JSON `top` array.
fn ranked(top: &serde_json::Value) -> Vec<(u64, f64)> {
    top.as_array()
        .expect("top is an array")
        .iter()
        .map(|t| {
            (
                t["index"].as_u64().unwrap(),
                t["probability"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no `{name}` in\n{text}"))
}

#[test]
fn serve_agrees_with_predict_batches_rejects_bad_input_and_shuts_down_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tiny_checkpoint(tmp.path());
    let images = noise_pngs(tmp.path(), 4);
    let mut args = vec!["predict", "--checkpoint", s(&ckpt), "--json"];
    args.extend(images.iter().map(|p| s(p)));
    let predicted: serde_json::Value =
        serde_json::from_str(&kestrel(args).ok().stdout).expect("predict --json");

    // A long batching window, so the concurrent requests below land in one batch.
    let mut server = Served::start(&[
        "--checkpoint",
        s(&ckpt),
        "--max-batch",
        "8",
        "--max-delay-ms",
        "400",
        "--max-body-mb",
        "0.05",
    ]);
    let addr = server.addr;

    let health = request(addr, "GET", "/healthz", None, b"");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["model"], "lenet5");

    // The four images at once, as raw bodies.
    let replies: Vec<Reply> = std::thread::scope(|sc| {
        let handles: Vec<_> = images
            .iter()
            .map(|p| {
                let bytes = std::fs::read(p).unwrap();
                sc.spawn(move || request(addr, "POST", "/v1/classify", Some("image/png"), &bytes))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut largest_batch = 0;
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r.status, 200, "{}", r.text());
        let j = r.json();
        let (got, want) = (ranked(&j["top"]), ranked(&predicted[i]["top"]));
        assert_eq!(got.len(), want.len());
        for ((gi, gp), (wi, wp)) in got.iter().zip(&want) {
            assert_eq!(
                gi, wi,
                "image {i}: class order differs: {got:?} vs {want:?}"
            );
            assert!((gp - wp).abs() < 1e-5, "image {i}: {got:?} vs {want:?}");
        }
        assert_eq!(j["top"][0]["class"], predicted[i]["top"][0]["class"]);
        for k in ["decode_ms", "queue_ms", "inference_ms", "total_ms"] {
            assert!(j["timings"][k].as_f64().unwrap() >= 0.0, "{k}: {j}");
        }
        largest_batch = largest_batch.max(j["batch_size"].as_u64().unwrap());
    }
    assert!(
        largest_batch > 1,
        "4 concurrent requests within 400 ms ran one by one"
    );

    // Multipart: the file field is found after another field.
    let (ctype, body) = multipart(&std::fs::read(&images[0]).unwrap(), "img0.png");
    let r = request(addr, "POST", "/v1/classify", Some(&ctype), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        ranked(&r.json()["top"])[0].0,
        ranked(&predicted[0]["top"])[0].0
    );

    // Errors, each a JSON {"error": ...}.
    let corrupt = request(
        addr,
        "POST",
        "/v1/classify",
        Some("image/png"),
        b"\x89PNG\r\n\x1a\nbroken",
    );
    assert_eq!(corrupt.status, 400, "{}", corrupt.text());
    assert!(corrupt.json()["error"]
        .as_str()
        .unwrap()
        .contains("request body"));
    let text = request(addr, "POST", "/v1/classify", None, b"just some words");
    assert_eq!(text.status, 400, "{}", text.text());
    assert!(text.json()["error"].is_string());
    let wrong_type = request(addr, "POST", "/v1/classify", Some("text/plain"), b"hello");
    assert_eq!(wrong_type.status, 415, "{}", wrong_type.text());
    assert!(wrong_type.json()["error"]
        .as_str()
        .unwrap()
        .contains("text/plain"));
    let big = vec![0u8; 60 * 1024];
    let too_big = request(addr, "POST", "/v1/classify", Some("image/png"), &big);
    assert_eq!(too_big.status, 413, "{}", too_big.text());
    let (ctype, body) = multipart(&big, "big.png");
    assert_eq!(
        request(addr, "POST", "/v1/classify", Some(&ctype), &body).status,
        413
    );
    let (ctype, _) = multipart(b"", "x.png");
    let no_file = request(
        addr,
        "POST",
        "/v1/classify",
        Some(&ctype),
        b"--kestrelTestBoundary7MA4YWxk--\r\n",
    );
    assert_eq!(no_file.status, 400, "{}", no_file.text());

    // Still serving after all that.
    let again = request(
        addr,
        "POST",
        "/v1/classify",
        Some("image/png"),
        &std::fs::read(&images[1]).unwrap(),
    );
    assert_eq!(again.status, 200);

    let page = request(addr, "GET", "/", None, b"");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("/v1/classify") && page.text().contains("<input id=\"file\""));

    let m = request(addr, "GET", "/metrics", None, b"");
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    let m = m.text();
    // 4 + multipart + again = 6 answered with 200; they ran in fewer than 6 batches.
    assert_eq!(
        metric(&m, "kestrel_requests_total{status=\"200\"}"),
        6.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "kestrel_requests_total{status=\"400\"}"),
        3.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "kestrel_requests_total{status=\"413\"}"),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "kestrel_requests_total{status=\"415\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(metric(&m, "kestrel_batch_size_sum"), 6.0, "{m}");
    assert!(metric(&m, "kestrel_batch_size_count") < 6.0, "{m}");
    assert_eq!(metric(&m, "kestrel_in_flight_requests"), 0.0, "{m}");
    assert_eq!(metric(&m, "kestrel_queued_requests"), 0.0, "{m}");
    assert_eq!(metric(&m, "kestrel_queue_seconds_count"), 6.0, "{m}");

    // SIGTERM while a request waits in its 400 ms batching window: it is still answered, and
    // the server exits 0.
    let pending = std::thread::spawn({
        let bytes = std::fs::read(&images[2]).unwrap();
        move || request(addr, "POST", "/v1/classify", Some("image/png"), &bytes)
    });
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(server.terminate(), Some(0), "exit code after SIGTERM");
    let r = pending.join().unwrap();
    assert_eq!(
        r.status,
        200,
        "the queued request was dropped: {}",
        r.text()
    );
    assert_eq!(
        ranked(&r.json()["top"])[0].0,
        ranked(&predicted[2]["top"])[0].0
    );
    assert!(
        TcpStream::connect(addr).is_err(),
        "still accepting after exit"
    );
}

#[test]
fn a_full_server_answers_503_with_retry_after_and_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let png = noise_pngs(tmp.path(), 1).remove(0);
    let bytes = std::fs::read(&png).unwrap();
    // Two requests may be inside at once; the first waits 500 ms for a batch, so the other
    // six concurrent ones find the server full.
    let server = Served::start(&[
        "--model",
        "resnet8_cifar",
        "--random-weights",
        "--queue",
        "2",
        "--max-batch",
        "16",
        "--max-delay-ms",
        "500",
    ]);
    let addr = server.addr;
    let replies: Vec<Reply> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..8)
            .map(|_| sc.spawn(|| request(addr, "POST", "/v1/classify", Some("image/png"), &bytes)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let full: Vec<&Reply> = replies.iter().filter(|r| r.status == 503).collect();
    assert_eq!(ok + full.len(), 8, "only 200s and 503s");
    assert!((1..=2).contains(&ok), "{ok} answered with a queue of 2");
    for r in &full {
        assert_eq!(r.header("retry-after"), Some("1"));
        assert!(r.json()["error"].as_str().unwrap().contains("--queue"));
    }
    let r = request(addr, "POST", "/v1/classify", Some("image/png"), &bytes);
    assert_eq!(
        r.status,
        200,
        "not serving after the overload: {}",
        r.text()
    );
    let m = request(addr, "GET", "/metrics", None, b"").text();
    assert_eq!(
        metric(&m, "kestrel_requests_total{status=\"503\"}"),
        full.len() as f64
    );
}

#[test]
fn serve_flags_are_checked() {
    let r = kestrel(["serve", "--model", "resnet8_cifar"]);
    r.fails_cleanly_naming(&["--weights", "--random-weights"]);
    let r = kestrel([
        "serve",
        "--model",
        "resnet8_cifar",
        "--random-weights",
        "--max-body-mb",
        "0",
    ]);
    r.fails_cleanly_naming(&["--max-body-mb"]);
}

/// Standard base64 (RFC 4648, with padding), for a `data:` URL.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_matches_rfc4648_vectors() {
    for (plain, coded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(plain.as_bytes()), coded);
    }
}

/// The web page in a real headless browser (Debian's Chromium, which .ci/run installs): it
/// loads the page, which classifies an image and draws the top-5 bars; the rendered DOM is
/// checked and a screenshot is taken and checked for the bars' colour.
#[test]
fn web_page_shows_the_top5_in_headless_chromium() {
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI=true but no Chromium: .ci/run installs Debian's `chromium` package"
        );
        eprintln!("skipped: no chromium on PATH (apt-get install chromium)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let png = std::fs::read(&noise_pngs(tmp.path(), 1)[0]).unwrap();
    let server = Served::start(&["--model", "resnet8_cifar", "--random-weights"]);
    let url = format!(
        "http://{}/?image=data:image/png;base64,{}",
        server.addr,
        base64(&png)
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    );
    let browse = |extra: &[&str]| {
        let out = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--virtual-time-budget=10000",
                "--window-size=800,600",
            ])
            .arg(format!(
                "--user-data-dir={}",
                tmp.path().join("profile").display()
            ))
            .args(extra)
            .arg(&url)
            .output()
            .expect("run chromium");
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dom = browse(&["--dump-dom"]);
    assert_eq!(
        dom.matches("class=\"row\"").count(),
        5,
        "five bars expected:\n{dom}"
    );
    assert!(dom.contains("class_"), "class names missing:\n{dom}");
    assert!(dom.contains("Done in"), "no timing line:\n{dom}");
    assert!(
        dom.contains("Model: resnet8_cifar"),
        "no model line:\n{dom}"
    );

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve_page.png");
    let _ = std::fs::remove_file(&shot);
    browse(&[&format!("--screenshot={}", shot.display())]);
    let img = image::open(&shot).expect("a screenshot").to_rgb8();
    assert_eq!(img.dimensions(), (800, 600));
    // The bars are #4a7 (68, 170, 119).
    let bar_pixels = img.pixels().filter(|p| p.0 == [0x44, 0xaa, 0x77]).count();
    assert!(
        bar_pixels > 100,
        "no bars in the screenshot {} ({bar_pixels} bar pixels)",
        shot.display()
    );
}
