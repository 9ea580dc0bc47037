//! `kestrel serve`: an HTTP server (axum on tokio) in front of one model, with dynamic batching.
//!
//! A request's life: admission (at most `queue` requests are inside the server at once; the
//! next gets 503 with `Retry-After`), body read (over `max_body_bytes`: 413), decode and eval
//! preprocessing on tokio's blocking pool (at most one per core at a time; a non-image body: 400
//! or 415), then the batch queue. One inference thread owns the model: it takes the first
//! waiting request, then more until it has `max_batch` of them or `max_delay` has passed since
//! the first arrived, runs them as one batch through
//! [`kestrel_train::LoadedModel::classify_batch_with`] (so the probabilities are `kestrel
//! predict`'s) and answers each request. Shutdown (SIGINT/SIGTERM, or the future given to
//! [`Server::run_until`]) stops accepting, lets the admitted requests finish, and returns.

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use kestrel_data::Chw;
use kestrel_deploy::Runner;
use kestrel_eval::top_k_classes;
use kestrel_train::LoadedModel;
use serde::Serialize;
use tokio::sync::{oneshot, Semaphore};

use crate::metrics::Metrics;

/// What `kestrel serve`'s flags set.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Most requests run as one batch.
    pub max_batch: usize,
    /// Longest the first request of a batch waits for others.
    pub max_delay: Duration,
    /// Most requests inside the server at once (being read, decoded, queued or run); the next
    /// is refused with 503.
    pub queue: usize,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Classes returned per image.
    pub top_k: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_batch: 16,
            max_delay: Duration::from_millis(5),
            queue: 256,
            max_body_bytes: 10 << 20,
            top_k: 5,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}")]
    Config(String),
}

/// One preprocessed image waiting for the inference thread.
struct Job {
    input: Chw,
    enqueued: Instant,
    reply: oneshot::Sender<Result<Answer, String>>,
}

/// The inference thread's answer to one job.
struct Answer {
    probabilities: Vec<f32>,
    queue_ms: f64,
    inference_ms: f64,
    batch_size: usize,
}

/// What the handlers share.
struct Shared {
    name: String,
    class_names: Vec<String>,
    transform: kestrel_data::transforms::EvalTransform,
    input_size: [usize; 3],
    engine: &'static str,
    opts: ServeOptions,
    /// Admission: one permit per request inside the server.
    admitted: Semaphore,
    /// Decodes at a time (decoding is CPU work; more than the cores only costs memory).
    decoding: Semaphore,
    jobs: Mutex<Option<SyncSender<Job>>>,
    metrics: Metrics,
}

/// A bound, not yet serving, server: the inference thread is running.
pub struct Server {
    listener: tokio::net::TcpListener,
    runtime: tokio::runtime::Runtime,
    shared: Arc<Shared>,
    worker: std::thread::JoinHandle<()>,
}

impl Server {
    /// Binds `addr` (port 0: any free port) and starts the inference thread for `model` on
    /// `runner`.
    pub fn bind(
        model: LoadedModel,
        runner: Runner,
        addr: SocketAddr,
        opts: ServeOptions,
    ) -> Result<Server, ServeError> {
        if opts.max_batch == 0 || opts.queue == 0 || opts.top_k == 0 {
            return Err(ServeError::Config(
                "--max-batch, --queue and --top-k must be at least 1".into(),
            ));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| ServeError::Io("starting the tokio runtime".into(), e))?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .map_err(|e| ServeError::Io(format!("--addr {addr}"), e))?;
        let (tx, rx) = mpsc::sync_channel::<Job>(opts.queue);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let shared = Arc::new(Shared {
            name: model.name.clone(),
            class_names: model.class_names.clone(),
            transform: model.transform.clone(),
            input_size: model.input_size(),
            engine: runner.name(),
            admitted: Semaphore::new(opts.queue),
            decoding: Semaphore::new(cores),
            jobs: Mutex::new(Some(tx)),
            metrics: Metrics::new(),
            opts,
        });
        let worker_shared = shared.clone();
        let worker = std::thread::Builder::new()
            .name("kestrel-infer".into())
            .spawn(move || infer_loop(model, runner, rx, &worker_shared))
            .map_err(|e| ServeError::Io("starting the inference thread".into(), e))?;
        Ok(Server {
            listener,
            runtime,
            shared,
            worker,
        })
    }

    /// The address actually bound (the port chosen for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound TCP listener")
    }

    /// Serves until SIGINT or SIGTERM, then finishes the admitted requests.
    pub fn run(self) -> Result<(), ServeError> {
        self.run_until(shutdown_signal())
    }

    /// Serves until `stop` completes, then stops accepting, finishes the admitted requests
    /// (queued ones included) and returns.
    pub fn run_until(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Server {
            listener,
            runtime,
            shared,
            worker,
        } = self;
        let app = router(shared.clone());
        let served = runtime.block_on(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        });
        // Every connection is closed: no handler can queue a job any more. Dropping the sender
        // lets the inference thread drain what is queued and stop.
        shared.jobs.lock().expect("jobs lock").take();
        let _ = worker.join();
        runtime.shutdown_timeout(Duration::from_secs(1));
        served.map_err(|e| ServeError::Io("serving".into(), e))
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(crate::page::INDEX_HTML) }))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/classify", post(classify))
        // The body limit is enforced while reading (413), not trusted from Content-Length only.
        .layer(DefaultBodyLimit::max(shared.opts.max_body_bytes))
        .with_state(shared)
}

async fn healthz(State(s): State<Arc<Shared>>) -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "status": "ok",
            "model": s.name,
            "engine": s.engine,
            "input_size": s.input_size,
            "classes": s.class_names.len(),
        }),
    )
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let mut r = s.metrics.render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// A request that failed, as JSON `{"error": ...}` with its status.
struct Failure {
    status: StatusCode,
    message: String,
}

fn fail(status: StatusCode, message: impl Into<String>) -> Failure {
    Failure {
        status,
        message: message.into(),
    }
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Response {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "{}".into());
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[derive(Serialize)]
struct Ranked<'a> {
    class: &'a str,
    index: usize,
    probability: f32,
}

#[derive(Serialize)]
struct Timings {
    /// Reading, decoding and preprocessing the image.
    decode_ms: f64,
    /// Waiting for the inference thread.
    queue_ms: f64,
    /// The batch's forward pass.
    inference_ms: f64,
    /// Admission to answer.
    total_ms: f64,
}

#[derive(Serialize)]
struct Classified<'a> {
    model: &'a str,
    top: Vec<Ranked<'a>>,
    batch_size: usize,
    timings: Timings,
}

async fn classify(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let start = Instant::now();
    let response = match s.admitted.try_acquire() {
        Err(_) => overloaded(),
        Ok(_permit) => {
            s.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
            let r = classify_admitted(&s, req, start).await;
            s.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
            r
        }
    };
    s.metrics.count_request(response.status().as_u16());
    response
}

fn overloaded() -> Response {
    let mut r = json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &serde_json::json!({"error": "the server is at its --queue limit; retry shortly"}),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

async fn classify_admitted(s: &Arc<Shared>, req: Request, start: Instant) -> Response {
    let (input, decode_ms) = match read_and_preprocess(s, req).await {
        Ok(v) => v,
        Err(f) => {
            return json_response(f.status, &serde_json::json!({"error": f.message}));
        }
    };
    let (reply, answer) = oneshot::channel();
    let job = Job {
        input,
        enqueued: Instant::now(),
        reply,
    };
    let sent = {
        let jobs = s.jobs.lock().expect("jobs lock");
        match jobs.as_ref() {
            Some(tx) => tx.try_send(job),
            None => Err(TrySendError::Disconnected(job)),
        }
    };
    match sent {
        Ok(()) => {
            s.metrics.queued.fetch_add(1, Ordering::Relaxed);
        }
        Err(TrySendError::Full(_)) => return overloaded(),
        Err(TrySendError::Disconnected(_)) => {
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"error": "the server is shutting down"}),
            )
        }
    }
    let answer = match answer.await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &serde_json::json!({"error": format!("inference failed: {e}")}),
            )
        }
        Err(_) => {
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &serde_json::json!({"error": "the inference thread stopped"}),
            )
        }
    };
    let top = top_k_classes(&answer.probabilities, s.opts.top_k)
        .into_iter()
        .map(|i| Ranked {
            class: s.class_names.get(i).map_or("?", String::as_str),
            index: i,
            probability: answer.probabilities[i],
        })
        .collect();
    json_response(
        StatusCode::OK,
        &Classified {
            model: &s.name,
            top,
            batch_size: answer.batch_size,
            timings: Timings {
                decode_ms,
                queue_ms: answer.queue_ms,
                inference_ms: answer.inference_ms,
                total_ms: start.elapsed().as_secs_f64() * 1e3,
            },
        },
    )
}

/// The request's image (raw body, or the first file field of a multipart form), decoded and
/// preprocessed, with the milliseconds that took.
async fn read_and_preprocess(s: &Arc<Shared>, req: Request) -> Result<(Chw, f64), Failure> {
    let start = Instant::now();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (bytes, name) = if content_type.starts_with("multipart/form-data") {
        read_multipart(req).await?
    } else if content_type.is_empty()
        || content_type.starts_with("image/")
        || content_type.starts_with("application/octet-stream")
    {
        let body = Bytes::from_request(req, &())
            .await
            .map_err(|e| fail(e.status(), format!("reading the body: {}", e.body_text())))?;
        (body, "request body".to_string())
    } else {
        return Err(fail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type '{content_type}': send the image itself (image/*, \
                 application/octet-stream) or a multipart/form-data form with a file field"
            ),
        ));
    };
    if bytes.is_empty() {
        return Err(fail(StatusCode::BAD_REQUEST, "the request has no image"));
    }
    let _decoding = s
        .decoding
        .acquire()
        .await
        .map_err(|_| fail(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?;
    let shared = s.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        let image = kestrel_data::decode::decode_image_bytes(&bytes, &name)
            .map_err(|e| fail(StatusCode::BAD_REQUEST, e.to_string()))?;
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        kestrel_data::SampleTransform::apply(&shared.transform, image, &mut rng)
            .map_err(|e| fail(StatusCode::BAD_REQUEST, e.to_string()))
    })
    .await
    .map_err(|_| {
        fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "decoding the image failed",
        )
    })??;
    Ok((decoded, start.elapsed().as_secs_f64() * 1e3))
}

async fn read_multipart(req: Request) -> Result<(Bytes, String), Failure> {
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|e| fail(e.status(), e.body_text()))?;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| fail(e.status(), format!("reading the form: {}", e.body_text())))?
    {
        if field.file_name().is_none() && field.name() != Some("image") {
            continue;
        }
        let name = field
            .file_name()
            .map(str::to_string)
            .unwrap_or_else(|| "form field 'image'".into());
        let bytes = field
            .bytes()
            .await
            .map_err(|e| fail(e.status(), format!("reading {name}: {}", e.body_text())))?;
        return Ok((bytes, name));
    }
    Err(fail(
        StatusCode::BAD_REQUEST,
        "the form has no file field (send the image as a file, or as a field named 'image')",
    ))
}

/// The inference thread: batches jobs and answers them, until every sender is gone and the
/// queue is empty.
fn infer_loop(model: LoadedModel, runner: Runner, rx: mpsc::Receiver<Job>, s: &Shared) {
    let max_batch = s.opts.max_batch;
    while let Ok(first) = rx.recv() {
        let deadline = first.enqueued + s.opts.max_delay;
        let mut jobs = vec![first];
        while jobs.len() < max_batch {
            // Jobs already waiting join the batch even when the deadline has passed.
            if let Ok(j) = rx.try_recv() {
                jobs.push(j);
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match rx.recv_timeout(deadline - now) {
                Ok(j) => jobs.push(j),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        let taken = Instant::now();
        s.metrics
            .queued
            .fetch_sub(jobs.len() as i64, Ordering::Relaxed);
        let (inputs, waits): (Vec<Chw>, Vec<(f64, oneshot::Sender<_>)>) = jobs
            .into_iter()
            .map(|j| {
                let waited = taken.duration_since(j.enqueued).as_secs_f64();
                (j.input, (waited, j.reply))
            })
            .unzip();
        let n = inputs.len();
        let run_start = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| {
            model.classify_batch_with(&runner, &inputs)
        }));
        let inference = run_start.elapsed().as_secs_f64();
        s.metrics.observe_batch(n, inference);
        let rows: Result<Vec<Vec<f32>>, String> = match result {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(e)) => Err(e.to_string()),
            Err(panic) => Err(kestrel_data::error::panic_message(panic.as_ref())),
        };
        match rows {
            Ok(rows) => {
                for (probabilities, (waited, reply)) in rows.into_iter().zip(waits) {
                    s.metrics.observe_queue(waited);
                    let _ = reply.send(Ok(Answer {
                        probabilities,
                        queue_ms: waited * 1e3,
                        inference_ms: inference * 1e3,
                        batch_size: n,
                    }));
                }
            }
            Err(e) => {
                for (waited, reply) in waits {
                    s.metrics.observe_queue(waited);
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
