//! A small HTTP load generator for `kestrel serve`, loopback only, bounded in requests and time:
//!
//!     cargo run --release --example loadgen -- ADDR IMAGE CONCURRENCY REQUESTS MAX_SECONDS
//!
//! CONCURRENCY connections each POST the image to /v1/classify, one request at a time (a new
//! connection per request), until REQUESTS have been sent or MAX_SECONDS have passed. Prints one
//! JSON line: status counts, throughput (answered 200s per second) and the p50/p90/p99/max
//! latency of the 200s in milliseconds.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn post(addr: SocketAddr, body: &[u8]) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        s,
        "POST /v1/classify HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let head = String::from_utf8_lossy(&raw[..raw.len().min(64)]).into_owned();
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line: {head:?}")))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 5 {
        eprintln!("usage: loadgen ADDR IMAGE CONCURRENCY REQUESTS MAX_SECONDS");
        std::process::exit(2);
    }
    let addr: SocketAddr = args[0].parse().expect("ADDR: host:port");
    assert!(
        addr.ip().is_loopback(),
        "loadgen only targets loopback addresses"
    );
    let body = std::fs::read(&args[1]).expect("IMAGE");
    let concurrency: usize = args[2].parse().expect("CONCURRENCY");
    let requests: usize = args[3].parse().expect("REQUESTS");
    let max_time = Duration::from_secs_f64(args[4].parse().expect("MAX_SECONDS"));
    let sent = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::<f64>::new());
    let statuses = Mutex::new(std::collections::BTreeMap::<String, usize>::new());
    let start = Instant::now();
    std::thread::scope(|sc| {
        for _ in 0..concurrency {
            sc.spawn(|| {
                while sent.fetch_add(1, Ordering::Relaxed) < requests && start.elapsed() < max_time
                {
                    let t = Instant::now();
                    let status = post(addr, &body);
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    let key = match status {
                        Ok(c) => c.to_string(),
                        Err(_) => "error".into(),
                    };
                    if key == "200" {
                        latencies.lock().unwrap().push(ms);
                    }
                    *statuses.lock().unwrap().entry(key).or_default() += 1;
                }
            });
        }
    });
    let wall = start.elapsed().as_secs_f64();
    let mut lat = latencies.into_inner().unwrap();
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| {
        if lat.is_empty() {
            f64::NAN
        } else {
            lat[((p * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1]
        }
    };
    let statuses = statuses.into_inner().unwrap();
    let counts: Vec<String> = statuses
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v}"))
        .collect();
    println!(
        "{{\"concurrency\": {concurrency}, \"seconds\": {wall:.2}, \"statuses\": {{{}}}, \
         \"throughput_rps\": {:.1}, \"p50_ms\": {:.1}, \"p90_ms\": {:.1}, \"p99_ms\": {:.1}, \"max_ms\": {:.1}}}",
        counts.join(", "),
        lat.len() as f64 / wall,
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0)
    );
}
