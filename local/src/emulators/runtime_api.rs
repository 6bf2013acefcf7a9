//! The Lambda Runtime API, and the pool of function processes that call it.
//!
//! On Lambda a function binary is a loop: `GET /2018-06-01/runtime/invocation/next` blocks until
//! an event arrives, the handler runs, `POST .../invocation/{id}/response` (or `/error`) reports
//! the result, and the loop calls `next` again. The `lambda_runtime` crate implements that loop,
//! so running the *real* binaries locally means serving these endpoints:
//!
//! | endpoint                                        | meaning                              |
//! |-------------------------------------------------|--------------------------------------|
//! | `GET  /2018-06-01/runtime/invocation/next`      | long-poll for the next event         |
//! | `POST /2018-06-01/runtime/invocation/{id}/response` | the handler's result             |
//! | `POST /2018-06-01/runtime/invocation/{id}/error`    | the handler failed               |
//! | `POST /2018-06-01/runtime/init/error`           | start-up failed (the process exits)  |
//!
//! Each *instance* (process) gets its own listener on a random port, handed to it in
//! `AWS_LAMBDA_RUNTIME_API`: the port tells us which process is calling, with no bookkeeping
//! in headers. Per function there is one queue of pending invocations; any idle instance takes
//! the next one. Like Lambda:
//!
//! * **scaling**: one instance starts eagerly; when an invocation is queued and no instance is
//!   idle or starting, another is spawned, up to the pool size, so concurrent requests really
//!   run in parallel processes (and races between them are real);
//! * **freezing**: an instance waiting in `next` with nothing to do is stopped (SIGSTOP) and
//!   continued (SIGCONT) just before it gets an event, so background threads do not run between
//!   invocations, exactly the condition that breaks stale connection pools on Lambda;
//! * **timeouts**: an invocation running past the function's `Timeout` kills its instance and
//!   fails; a crash mid-invocation fails that invocation; replacements start on demand;
//! * **crashes on purpose** ([`Pool::arm_crash`], `POST /_local/functions/<LogicalId>/crash`
//!   `{"after_ms": n}` on the Invoke API): the next invocation's process is killed `n` ms after it
//!   took the event, or when it reports its result if that comes first (then the result is lost
//!   with it): what a Lambda instance dying mid-invocation looks like to its caller.
//! * **stalls on purpose** ([`Pool::arm_stall`], `POST /_local/functions/<LogicalId>/stall`
//!   `{"after_ms": n, "for_ms": m}`): the next invocation's process is stopped (SIGSTOP) `n` ms
//!   after it took the event — or as it reports its result, which is then held — and continued
//!   `m` ms later. Short, it is a slow function (a dependency answering late); past the function's
//!   `Timeout`, the timeout kills it as Lambda would (`Sandbox.Timedout`): work it committed
//!   before the stall stays committed, its answer is lost. What AWS Fault Injection Service's
//!   Lambda *delay* action does to a function.
//!
//! **Unexpected exits**: an instance exits only when the pool kills it (a timeout, the crash
//! switch, a cold-start round's retirement, shutdown). Any other exit — a panic, an init failure,
//! a signal from outside — is logged as an error and listed in `unexpected_exits` of
//! [`Pool::stats`]; `cargo local test` fails on any.
//!
//! [`Pool::stats`] reports, besides counts, each instance's init time (spawn → first `next`, what
//! Lambda calls the init phase) and the peak resident memory of each live instance (`VmHWM` of
//! `/proc/<pid>/status`, the kernel's high-water mark, so a reading at any time covers the whole
//! life of the process; an instance that already exited is gone from `/proc` and not reported).
//!
//! **Timeline** (off by default; `cargo local bench` switches it on): with
//! [`Pool::record_timeline`], each invocation that gets a result leaves an [`InvocationTimes`]
//! (queued, event delivered, result posted, which instance, whether it was frozen) in a bounded
//! ring, so the benchmark can say where a request's time went without guessing. Off, it costs
//! one uncontended lock per invocation.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::{Notify, oneshot};

use crate::process::{self, Output};
use crate::template::{ACCOUNT_ID, REGION};

/// How to run one function: everything except the per-instance Runtime API address.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub logical_id: String,
    pub binary: PathBuf,
    /// Complete environment (template + overrides + endpoints + Lambda variables).
    pub env: BTreeMap<String, String>,
    pub timeout: Duration,
    /// `None`: our stderr with a prefix; `Some(dir)`: `dir/<LogicalId>.log`, one JSON object per
    /// line (see [`process::function_log_line`] and [`crate::emulators::logs`]).
    pub log_dir: Option<PathBuf>,
    /// With a `log_dir`, each line also to our stderr, prefixed with its instance.
    pub echo_logs: bool,
    /// Where the function's EMF lines and Lambda's own `AWS/Lambda` figures go, if anywhere
    /// (see [`crate::emulators::cloudwatch`]).
    pub metrics: Option<crate::emulators::cloudwatch::metrics::Metrics>,
}

/// How an invocation ended.
#[derive(Debug)]
pub enum Outcome {
    /// The handler's result (JSON bytes).
    Success(Bytes),
    /// The handler returned an error: `{"errorType", "errorMessage"}` as posted by the runtime.
    FunctionError(Bytes),
    /// No result: the instance timed out, crashed or failed to start.
    Failed { error_type: &'static str, message: String },
}

impl Outcome {
    /// The error document Lambda's Invoke API returns for a failed invocation.
    pub fn failure_body(error_type: &str, message: &str) -> Bytes {
        Bytes::from(json!({ "errorType": error_type, "errorMessage": message }).to_string())
    }
}

struct Pending {
    request_id: String,
    payload: Bytes,
    reply: oneshot::Sender<Outcome>,
    /// For the timeline: when [`Pool::invoke`] queued it.
    queued: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Spawned, has not called `next` yet (initialising).
    Starting,
    /// Waiting in `next`.
    Idle,
    /// Running an invocation.
    Busy,
}

struct Current {
    request_id: String,
    reply: oneshot::Sender<Outcome>,
    /// For the timeline.
    times: Stamps,
}

struct Instance {
    name: String,
    pid: u32,
    spawned: Instant,
    phase: Mutex<Phase>,
    frozen: AtomicBool,
    dead: AtomicBool,
    current: Mutex<Option<Current>>,
    init_error: Mutex<Option<String>>,
    initialised: AtomicBool,
    /// The request this instance is to die in (see [`Pool::arm_crash`]).
    doomed: Mutex<Option<String>>,
    /// The request this instance is to stall in, and for how long (see [`Pool::arm_stall`]).
    stalling: Mutex<Option<(String, Duration)>>,
    /// Stopped on purpose while idle ([`Pool::retire_idle`]): its exit is no news.
    retired: AtomicBool,
    /// We sent it SIGKILL (timeout, crash switch, retirement, shutdown): any other exit is
    /// unexpected, and counted as such.
    asked_to_die: AtomicBool,
}

impl Instance {
    /// Kills the process on purpose (continued first: a stopped process dies only once running).
    fn kill(&self) {
        self.asked_to_die.store(true, Ordering::SeqCst);
        process::signal(self.pid, process::SIGCONT);
        process::signal(self.pid, process::SIGKILL);
    }
}

/// One function's instances and invocation queue.
pub struct Pool {
    spec: FunctionSpec,
    max_instances: usize,
    freeze: bool,
    queue: Mutex<VecDeque<Pending>>,
    ready: Notify,
    instances: Mutex<Vec<Arc<Instance>>>,
    /// Serialises "is another instance needed?" with the spawn, so bursts respect the pool size.
    scaling: Mutex<()>,
    started: AtomicUsize,
    invocations: AtomicU64,
    /// Instances that exited in the middle of an invocation (crash, timeout, on purpose).
    crashes: AtomicU64,
    /// Invocations that ran past the function's `Timeout` (their instance was killed).
    timeouts: AtomicU64,
    /// Exits nobody asked for (no timeout, no crash switch, no retirement, no shutdown): the
    /// process crashed, or something outside the pool killed it. A clean run has none.
    unexpected_exits: Mutex<Vec<String>>,
    init_ms: Mutex<Vec<u64>>,
    shutting_down: AtomicBool,
    /// A crash armed for the next invocation: how long after it starts.
    crash: Mutex<Option<Duration>>,
    /// A stall armed for the next invocation: how long after it starts, and how long it lasts.
    stall: Mutex<Option<(Duration, Duration)>>,
    /// The timeline ring, `None` while off (see [`Pool::record_timeline`]).
    timeline: Mutex<Option<VecDeque<InvocationTimes>>>,
    this: Weak<Pool>,
}

impl Pool {
    /// Creates the pool and starts its first instance (cold start at stack start, not on the
    /// first request).
    pub fn start(spec: FunctionSpec, max_instances: usize, freeze: bool) -> Result<Arc<Self>> {
        let pool = Arc::new_cyclic(|this| Self {
            spec,
            max_instances: max_instances.max(1),
            freeze,
            queue: Mutex::default(),
            ready: Notify::new(),
            instances: Mutex::default(),
            scaling: Mutex::default(),
            started: AtomicUsize::new(0),
            invocations: AtomicU64::new(0),
            crashes: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            unexpected_exits: Mutex::default(),
            init_ms: Mutex::default(),
            shutting_down: AtomicBool::new(false),
            crash: Mutex::default(),
            stall: Mutex::default(),
            timeline: Mutex::default(),
            this: this.clone(),
        });
        if let Some(dir) = &pool.spec.log_dir {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            // Fresh log per run: the previous run's lines would only mislead.
            let _ = std::fs::remove_file(crate::emulators::logs::file_of(dir, &pool.spec.logical_id));
        }
        pool.spawn_instance()?;
        Ok(pool)
    }

    /// The function's logical id in the template.
    pub fn logical_id(&self) -> &str {
        &self.spec.logical_id
    }

    /// Runs one invocation to completion (result, function error, timeout or crash).
    pub async fn invoke(&self, payload: Bytes) -> Outcome {
        let (reply, rx) = oneshot::channel();
        let request_id = uuid::Uuid::new_v4().to_string();
        self.queue.lock().unwrap().push_back(Pending { request_id, payload, reply, queued: Instant::now() });
        self.ready.notify_one();
        self.scale();
        let outcome = rx.await.unwrap_or(Outcome::Failed {
            error_type: "Local.Shutdown",
            message: "the local stack is shutting down".into(),
        });
        if let Some(metrics) = &self.spec.metrics {
            let failed = !matches!(outcome, Outcome::Success(_));
            metrics.invocation(&self.spec.logical_id, failed);
        }
        outcome
    }

    /// Spawns an instance when queued work outnumbers instances that could take it.
    fn scale(&self) {
        if self.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        let _scaling = self.scaling.lock().unwrap();
        let queued = self.queue.lock().unwrap().len();
        let (available, live) = {
            let instances = self.instances.lock().unwrap();
            let available = instances.iter().filter(|i| *i.phase.lock().unwrap() != Phase::Busy).count();
            (available, instances.len())
        };
        if queued > available
            && live < self.max_instances
            && let Err(e) = self.spawn_instance()
        {
            tracing::error!("{}: cannot start an instance: {e:#}", self.spec.logical_id);
            if live == 0 {
                self.fail_queued("Runtime.Unavailable", &format!("{e:#}"));
            }
        }
    }

    fn fail_queued(&self, error_type: &'static str, message: &str) {
        let drained: Vec<Pending> = self.queue.lock().unwrap().drain(..).collect();
        for p in drained {
            let _ = p.reply.send(Outcome::Failed { error_type, message: message.to_owned() });
        }
    }

    fn spawn_instance(&self) -> Result<()> {
        let number = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let name = format!("{}#{number}", self.spec.logical_id);
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding a Runtime API port")?;
        std_listener.set_nonblocking(true)?;
        let port = std_listener.local_addr()?.port();
        let listener = tokio::net::TcpListener::from_std(std_listener)?;

        let mut cmd = process::command(&self.spec.binary);
        cmd.env_clear()
            .envs(&self.spec.env)
            .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", log_stream_name())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = process::spawn(cmd)
            .with_context(|| format!("spawning {} (did the build succeed?)", self.spec.binary.display()))?;
        let output = match &self.spec.log_dir {
            Some(dir) => Output::FunctionLog {
                path: crate::emulators::logs::file_of(dir, &self.spec.logical_id),
                instance: name.clone(),
                echo: self.spec.echo_logs,
            },
            None => Output::Stderr { prefix: format!("[{name}]") },
        };
        let tap =
            self.spec.metrics.clone().map(|m| -> process::Tap { std::sync::Arc::new(move |line| m.ingest(line)) });
        process::forward_output_tapped(&mut child, output, tap);

        let instance = Arc::new(Instance {
            name,
            pid: child.id().context("child has no pid")?,
            spawned: Instant::now(),
            phase: Mutex::new(Phase::Starting),
            frozen: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            current: Mutex::default(),
            init_error: Mutex::default(),
            initialised: AtomicBool::new(false),
            doomed: Mutex::default(),
            stalling: Mutex::default(),
            retired: AtomicBool::new(false),
            asked_to_die: AtomicBool::new(false),
        });
        self.instances.lock().unwrap().push(instance.clone());

        let pool = self.this.upgrade().context("pool dropped")?;
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state((pool.clone(), instance.clone()));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        // The monitor owns the child: it notices the exit, whatever the cause.
        tokio::spawn(async move {
            let status = child.wait().await;
            server.abort();
            pool.on_exit(&instance, status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()));
        });
        Ok(())
    }

    fn on_exit(&self, instance: &Arc<Instance>, status: String) {
        instance.dead.store(true, Ordering::SeqCst);
        self.instances.lock().unwrap().retain(|i| !Arc::ptr_eq(i, instance));
        if self.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        let init_error = instance.init_error.lock().unwrap().take();
        let detail = init_error.map(|e| format!(": {e}")).unwrap_or_default();
        if !instance.asked_to_die.load(Ordering::SeqCst) {
            let during = instance.current.lock().unwrap().as_ref().map(|c| format!(" during {}", c.request_id));
            let line = format!("{} exited unasked ({status}){}{detail}", instance.name, during.unwrap_or_default());
            tracing::error!("{line}");
            self.unexpected_exits.lock().unwrap().push(line);
        }
        if let Some(current) = instance.current.lock().unwrap().take() {
            self.crashes.fetch_add(1, Ordering::SeqCst);
            tracing::warn!("{} exited ({status}) during invocation {}{detail}", instance.name, current.request_id);
            let _ = current.reply.send(Outcome::Failed {
                error_type: "Runtime.ExitError",
                message: format!("RequestId: {} Error: Runtime exited ({status}){detail}", current.request_id),
            });
        } else if !instance.retired.load(Ordering::SeqCst) {
            tracing::warn!("{} exited ({status}){detail}", instance.name);
        }
        if !instance.initialised.load(Ordering::SeqCst) && self.instances.lock().unwrap().is_empty() {
            // Init failed and nobody else can serve: fail what is waiting instead of looping.
            self.fail_queued("Runtime.InitError", &format!("instance failed to start ({status}){detail}"));
        } else {
            self.scale();
        }
    }

    /// Takes the next invocation for `instance`, freezing it while there is none.
    async fn take(&self, instance: &Arc<Instance>) -> Pending {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(p) = self.queue.lock().unwrap().pop_front() {
                return p;
            }
            if self.freeze && !instance.frozen.swap(true, Ordering::SeqCst) {
                process::signal(instance.pid, process::SIGSTOP);
            }
            notified.await;
        }
    }

    /// Kills the process of the next invocation `after` it took the event, or as it reports its
    /// result if that is sooner; the invocation fails as a crash (`Runtime.ExitError`).
    pub fn arm_crash(&self, after: Duration) {
        *self.crash.lock().unwrap() = Some(after);
    }

    /// Stops the process of the next invocation `after` it took the event, or as it reports its
    /// result if that is sooner (the result is then held), and continues it `lasts` later; a
    /// stall that outlasts the function's `Timeout` ends in the timeout (see the module docs).
    pub fn arm_stall(&self, after: Duration, lasts: Duration) {
        *self.stall.lock().unwrap() = Some((after, lasts));
    }

    /// Stops every idle instance (none that is starting or running an invocation; one that has
    /// just answered is given up to 5 s to call `next`) and waits until they are gone, so the next invocation starts a process: a cold start on demand, for
    /// the benchmark's cold-start rounds.
    pub async fn retire_idle(&self) {
        // An instance that just answered calls `next` a moment later: let them all get there.
        for _ in 0..5000 {
            if self.instances.lock().unwrap().iter().all(|i| *i.phase.lock().unwrap() == Phase::Idle) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let idle: Vec<Arc<Instance>> = self
            .instances
            .lock()
            .unwrap()
            .iter()
            .filter(|i| *i.phase.lock().unwrap() == Phase::Idle)
            .cloned()
            .collect();
        for i in &idle {
            i.retired.store(true, Ordering::SeqCst);
            i.kill();
        }
        for _ in 0..250 {
            if idle.iter().all(|i| i.dead.load(Ordering::SeqCst)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits (up to 5 s) until an instance is idle, waiting in `next`: after an answer, its
    /// instance calls `next` a moment later, and an invocation queued before that starts another.
    pub async fn until_idle(&self) {
        for _ in 0..5000 {
            if self.instances.lock().unwrap().iter().any(|i| *i.phase.lock().unwrap() == Phase::Idle) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// What [`Self::stats`] reports as `unexpected_exits`: one line per instance that died unasked.
    pub fn unexpected_exits(&self) -> Vec<String> {
        self.unexpected_exits.lock().unwrap().clone()
    }

    /// Instances started so far.
    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    /// Stops every instance; queued and running invocations fail.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.fail_queued("Local.Shutdown", "the local stack is shutting down");
        let instances: Vec<Arc<Instance>> = self.instances.lock().unwrap().clone();
        for i in &instances {
            i.kill();
        }
        // Give the monitors a moment to reap the processes (no zombies left behind).
        for _ in 0..50 {
            if self.instances.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Figures for `GET /_local/functions`.
    pub fn stats(&self) -> serde_json::Value {
        let instances = self.instances.lock().unwrap();
        let phase_count = |p: Phase| instances.iter().filter(|i| *i.phase.lock().unwrap() == p).count();
        json!({
            "instances": instances.len(),
            "idle": phase_count(Phase::Idle),
            "busy": phase_count(Phase::Busy),
            "starting": phase_count(Phase::Starting),
            "frozen": instances.iter().filter(|i| i.frozen.load(Ordering::SeqCst)).count(),
            "instances_started": self.started.load(Ordering::SeqCst),
            "max_instances": self.max_instances,
            "init_ms": *self.init_ms.lock().unwrap(),
            "peak_rss_kib": instances.iter().filter_map(|i| peak_rss_kib(i.pid)).collect::<Vec<_>>(),
            "invocations": self.invocations.load(Ordering::SeqCst),
            "crashes": self.crashes.load(Ordering::SeqCst),
            "timeouts": self.timeouts.load(Ordering::SeqCst),
            "unexpected_exits": *self.unexpected_exits.lock().unwrap(),
            "queued": self.queue.lock().unwrap().len(),
        })
    }
}

/// The process's peak resident set (`VmHWM`, KiB); readable while it lives, frozen or not.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    line.trim().trim_end_matches("kB").trim().parse().ok()
}

type RuntimeState = State<(Arc<Pool>, Arc<Instance>)>;

async fn next(State((pool, instance)): RuntimeState) -> Response {
    let waiting_since = Instant::now();
    if !instance.initialised.swap(true, Ordering::SeqCst) {
        let ms = instance.spawned.elapsed().as_millis() as u64;
        pool.init_ms.lock().unwrap().push(ms);
        tracing::info!("{} initialised in {ms} ms", instance.name);
    }
    *instance.phase.lock().unwrap() = Phase::Idle;
    let pending = pool.take(&instance).await;
    if instance.dead.load(Ordering::SeqCst) {
        // The process died while we waited for work: give the event to someone else.
        pool.queue.lock().unwrap().push_front(pending);
        pool.ready.notify_one();
        return StatusCode::GONE.into_response();
    }
    let was_frozen = instance.frozen.swap(false, Ordering::SeqCst);
    if was_frozen {
        process::signal(instance.pid, process::SIGCONT);
    }
    *instance.phase.lock().unwrap() = Phase::Busy;
    pool.invocations.fetch_add(1, Ordering::SeqCst);

    let timeout = pool.spec.timeout;
    let deadline_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + timeout;
    let request_id = pending.request_id.clone();
    // `delivered` is stamped again just before the answer leaves (below).
    let sched = pool.timeline.lock().unwrap().is_some().then(|| sched(instance.pid)).flatten();
    let times = Stamps { queued: pending.queued, waiting_since, delivered: Instant::now(), was_frozen, sched };
    *instance.current.lock().unwrap() = Some(Current { request_id: request_id.clone(), reply: pending.reply, times });

    // Enforce the function's Timeout: kill the instance and fail the invocation, as Lambda does.
    let (timer_pool, timer_instance, timer_id) = (pool.clone(), instance.clone(), request_id.clone());
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        let mut current = timer_instance.current.lock().unwrap();
        if current.as_ref().is_some_and(|c| c.request_id == timer_id) {
            let c = current.take().expect("checked");
            drop(current);
            tracing::warn!("{} timed out after {timeout:?} on {timer_id}; killing it", timer_instance.name);
            timer_pool.timeouts.fetch_add(1, Ordering::SeqCst);
            let _ = c.reply.send(Outcome::Failed {
                error_type: "Sandbox.Timedout",
                message: format!(
                    "RequestId: {timer_id} Error: Task timed out after {:.2} seconds",
                    timeout.as_secs_f64()
                ),
            });
            timer_instance.kill();
            drop(timer_pool);
        }
    });

    if let Some(after) = pool.crash.lock().unwrap().take() {
        *instance.doomed.lock().unwrap() = Some(request_id.clone());
        let (doomed, id) = (instance.clone(), request_id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            kill_if_doomed(&doomed, &id);
        });
    }

    if let Some((after, lasts)) = pool.stall.lock().unwrap().take() {
        *instance.stalling.lock().unwrap() = Some((request_id.clone(), lasts));
        let (stalled, id) = (instance.clone(), request_id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            if let Some(lasts) = stop_if_stalling(&stalled, &id) {
                tokio::time::sleep(lasts).await;
                if !stalled.dead.load(Ordering::SeqCst) {
                    process::signal(stalled.pid, process::SIGCONT);
                }
            }
        });
    }

    let arn = format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{}", pool.spec.logical_id);
    let mut headers = HeaderMap::new();
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = v.parse() {
            headers.insert(k, v);
        }
    };
    put("lambda-runtime-aws-request-id", request_id);
    put("lambda-runtime-deadline-ms", deadline_ms.as_millis().to_string());
    put("lambda-runtime-invoked-function-arn", arn);
    put("lambda-runtime-trace-id", trace_id());
    put("content-type", "application/json".into());
    if let Some(c) = instance.current.lock().unwrap().as_mut() {
        c.times.delivered = Instant::now();
    }
    (StatusCode::OK, headers, pending.payload).into_response()
}

/// Kills the instance if it is to die in request `id` and has not yet: true if it was killed.
fn kill_if_doomed(instance: &Instance, id: &str) -> bool {
    let mut doomed = instance.doomed.lock().unwrap();
    if doomed.as_deref() != Some(id) {
        return false;
    }
    doomed.take();
    tracing::warn!("{}: crashing on purpose during {id}", instance.name);
    instance.kill();
    true
}

/// Stops the instance if it is to stall in request `id` and has not yet: how long for, if stopped.
fn stop_if_stalling(instance: &Instance, id: &str) -> Option<Duration> {
    let mut stalling = instance.stalling.lock().unwrap();
    if stalling.as_ref().is_none_or(|(s, _)| s != id) || instance.dead.load(Ordering::SeqCst) {
        return None;
    }
    let (_, lasts) = stalling.take()?;
    tracing::warn!("{}: stalling on purpose for {lasts:?} during {id}", instance.name);
    process::signal(instance.pid, process::SIGSTOP);
    Some(lasts)
}

/// Hands the result to the waiting caller, if the invocation is still this instance's.
fn complete(pool: &Arc<Pool>, instance: &Arc<Instance>, id: &str, outcome: Outcome) -> Response {
    let posted = Instant::now();
    if kill_if_doomed(instance, id) {
        // The process dies before its result gets out: the exit monitor fails the invocation.
        return (StatusCode::ACCEPTED, axum::Json(json!({ "status": "OK" }))).into_response();
    }
    if let Some(lasts) = stop_if_stalling(instance, id) {
        // The result is held while the process stands still; the timeout may take it first.
        let (pool, instance, id) = (pool.clone(), instance.clone(), id.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(lasts).await;
            deliver(&pool, &instance, &id, outcome, posted);
            if !instance.dead.load(Ordering::SeqCst) {
                process::signal(instance.pid, process::SIGCONT);
            }
        });
        return (StatusCode::ACCEPTED, axum::Json(json!({ "status": "OK" }))).into_response();
    }
    deliver(pool, instance, id, outcome, posted)
}

fn deliver(pool: &Pool, instance: &Instance, id: &str, outcome: Outcome, posted: Instant) -> Response {
    let mut current = instance.current.lock().unwrap();
    if current.as_ref().is_some_and(|c| c.request_id == id) {
        let c = current.take().expect("checked");
        drop(current);
        let _ = c.reply.send(outcome);
        pool.record(instance, c.times, posted);
        (StatusCode::ACCEPTED, axum::Json(json!({ "status": "OK" }))).into_response()
    } else {
        // Late answer after a timeout, or an unknown id: the Runtime API says 400.
        (StatusCode::BAD_REQUEST, axum::Json(json!({ "errorType": "InvalidRequestID", "errorMessage": id })))
            .into_response()
    }
}

async fn response(State((pool, instance)): RuntimeState, Path(id): Path<String>, body: Bytes) -> Response {
    complete(&pool, &instance, &id, Outcome::Success(body))
}

async fn error(State((pool, instance)): RuntimeState, Path(id): Path<String>, body: Bytes) -> Response {
    complete(&pool, &instance, &id, Outcome::FunctionError(body))
}

async fn init_error(State((_, instance)): RuntimeState, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body).into_owned();
    tracing::error!("{} init error: {text}", instance.name);
    *instance.init_error.lock().unwrap() = Some(text);
    (StatusCode::ACCEPTED, axum::Json(json!({ "status": "OK" }))).into_response()
}

// ---- Timeline (see the module docs): records for `cargo local bench`, off by default. ----

/// Invocations a timeline holds at most; the oldest are dropped first.
const TIMELINE_CAPACITY: usize = 16_384;

/// One invocation that got a result, as the Runtime API saw it.
#[derive(Debug, Clone)]
pub struct InvocationTimes {
    /// The instance that ran it (`PlaceOrderFunction#3`).
    pub instance: String,
    /// [`Pool::invoke`] was called: the event is queued.
    pub queued: Instant,
    /// The instance's `next` call arrived (it then waited, frozen if freezing is on).
    pub waiting_since: Instant,
    /// The `next` answer carrying the event is handed to the HTTP server.
    pub delivered: Instant,
    /// The function's `response` (or `error`) call arrived with the result.
    pub posted: Instant,
    /// The instance was stopped (SIGSTOP) and had to be continued for this event.
    pub was_frozen: bool,
    /// Delivered → posted, summed over the instance's threads: time on a CPU, and time runnable
    /// but waiting for one (`/proc/<pid>/task/*/schedstat`; `None` where unreadable).
    pub on_cpu: Option<Duration>,
    pub waiting_for_cpu: Option<Duration>,
}

/// An invocation's stamps while it runs.
struct Stamps {
    queued: Instant,
    waiting_since: Instant,
    delivered: Instant,
    was_frozen: bool,
    /// The instance's [`sched`] at delivery.
    sched: Option<(u64, u64)>,
}

/// A process's nanoseconds on a CPU and runnable waiting for one, summed over its threads (the
/// first two fields of `/proc/<pid>/task/<tid>/schedstat`). Read only while a timeline records:
/// it costs a directory listing and a read per thread, some tens of µs.
fn sched(pid: u32) -> Option<(u64, u64)> {
    let (mut run, mut wait) = (0, 0);
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(text) = std::fs::read_to_string(task.ok()?.path().join("schedstat")) else { continue };
        let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().unwrap_or(0));
        run += fields.next().unwrap_or(0);
        wait += fields.next().unwrap_or(0);
    }
    Some((run, wait))
}

impl Pool {
    /// Starts (`true`, with an empty ring) or stops recording the timeline.
    pub fn record_timeline(&self, on: bool) {
        *self.timeline.lock().unwrap() = on.then(VecDeque::new);
    }

    /// Takes what the timeline holds (oldest first), leaving it empty and recording.
    pub fn take_timeline(&self) -> Vec<InvocationTimes> {
        self.timeline.lock().unwrap().as_mut().map(|t| t.drain(..).collect()).unwrap_or_default()
    }

    fn record(&self, instance: &Instance, times: Stamps, posted: Instant) {
        if self.timeline.lock().unwrap().is_none() {
            return;
        }
        let used = times.sched.zip(sched(instance.pid)).map(|((run, wait), (run2, wait2))| {
            (Duration::from_nanos(run2.saturating_sub(run)), Duration::from_nanos(wait2.saturating_sub(wait)))
        });
        let Stamps { queued, waiting_since, delivered, was_frozen, .. } = times;
        let record = InvocationTimes {
            instance: instance.name.clone(),
            queued,
            waiting_since,
            delivered,
            posted,
            was_frozen,
            on_cpu: used.map(|u| u.0),
            waiting_for_cpu: used.map(|u| u.1),
        };
        if let Some(ring) = self.timeline.lock().unwrap().as_mut() {
            if ring.len() == TIMELINE_CAPACITY {
                ring.pop_front();
            }
            ring.push_back(record);
        }
    }
}

/// X-Ray format: `Root=1-<epoch hex>-<96-bit hex>;Parent=<64-bit hex>;Sampled=0`.
fn trace_id() -> String {
    let epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("Root=1-{epoch:08x}-{};Parent={};Sampled=0", &a[..24], &b[..16])
}

/// Lambda's format: `2024/01/31/[$LATEST]<32 hex>`.
fn log_stream_name() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}/{:02}/{:02}/[$LATEST]{}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        uuid::Uuid::new_v4().simple()
    )
}
