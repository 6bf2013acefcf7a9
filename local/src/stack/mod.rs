//! Starts the whole local stack from the template and hands back its URLs.
//!
//! Order matters and mirrors a deployment: the database first (tables created from the
//! template) with the [`crate::emulators::dynamodb_proxy`] in front of it (the functions' DynamoDB
//! endpoint, counting calls, injecting faults and enforcing partition limits when asked; tests
//! read the table directly; `cargo local bench --no-proxy` leaves it out), then the function
//! pools (their first instance initialises against a database that is ready; before them the Kafka broker and the SES emulator they publish and send to,
//! see [`crate::stack::messaging`]), then the front doors: the API Gateway emulation, the MSK trigger and
//! the Lambda Invoke API.
//! [`Stack::stop`] takes everything down in reverse; process death signals (see `process`)
//! guarantee the same if we never get to call it.

pub mod install;
pub mod messaging;
pub mod storefront;
pub mod workspace;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::task::JoinHandle;

use crate::emulators::api_gateway::Gateway;
use crate::emulators::cloudwatch::CloudWatch;
use crate::emulators::dynamodb_local::{self, DynamoDbLocal};
use crate::emulators::dynamodb_proxy::DynamoDbProxy;
use crate::emulators::iam::Roles;
use crate::emulators::iam::authorizer::Authorizer;
pub use crate::emulators::iam::authorizer::Mode as IamMode;
use crate::emulators::invoke;
use crate::emulators::runtime_api::{FunctionSpec, Pool};
use crate::progress::{self, Step};
use crate::stack::messaging::Messaging;
use crate::stack::workspace::Workspace;
use crate::template::env_vars::EnvOverrides;
use crate::template::{REGION, Template};

/// The admin account the seed creates (and tests log in as).
pub const ADMIN_EMAIL: &str = "admin@shop.local";
pub const ADMIN_PASSWORD: &str = "local-admin-password";

pub struct Options {
    /// API Gateway port (0 = random); `None` = no API (the `invoke` subcommand).
    pub api_port: Option<u16>,
    /// Lambda Invoke API port (0 = random); `None` = not served.
    pub invoke_port: Option<u16>,
    pub pool_size: usize,
    pub freeze: bool,
    /// Where the functions' output goes: `dir/<Function>.log`, one JSON object per line (see
    /// [`crate::emulators::logs`]); `None`: `target/local-logs/`.
    pub function_logs: Option<PathBuf>,
    /// What the terminal shows while the stack runs.
    pub console: Console,
    /// Only these functions (logical ids); `None` = all.
    pub only: Option<Vec<String>>,
    /// The template's `Schedule` events (see [`crate::emulators::schedule`]).
    pub schedule: crate::emulators::schedule::Mode,
    /// The cargo profile whose binaries run (`target/<profile>/`).
    pub profile: &'static str,
    /// Functions reach DynamoDB Local through the counting, fault-injecting, authorizing proxy
    /// (`false`: directly, for benchmarks that must not pay for the extra hop; no counts, no
    /// faults, no IAM on DynamoDB calls).
    pub dynamodb_proxy: bool,
    /// What a request the function's role does not allow gets (see [`crate::emulators::iam`]).
    pub iam: IamMode,
    /// `false`: the functions run with `METRICS_DISABLED=true` (no EMF; `cargo local bench
    /// --no-metrics` measures what metrics cost).
    pub metrics: bool,
}

/// What the terminal shows of a running stack, besides the alarms firing and clearing (the
/// functions' logs always go to their files, see [`Options::function_logs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    /// Nothing per request or per log line (`test`, `bench`: their own output is what matters).
    Quiet,
    /// One line per API request (`up`: time, method, path, status, latency, function, request id),
    /// once [`Stack::show_requests`] is called.
    Requests,
    /// The request lines and every function's log lines as they come (`up --verbose`, `invoke`).
    Verbose,
}

impl Options {
    /// A stack for one command's run (the test suite, the benchmarks): API and Invoke API on
    /// random ports, `pool_size` instances per function frozen between invocations, function
    /// output to `function_logs/<Function>.log`, schedule off.
    pub fn throwaway(pool_size: usize, function_logs: PathBuf) -> Self {
        Self {
            api_port: Some(0),
            invoke_port: Some(0),
            pool_size,
            freeze: true,
            function_logs: Some(function_logs),
            console: Console::Quiet,
            only: None,
            schedule: crate::emulators::schedule::Mode::Off,
            profile: crate::stack::workspace::PROFILE,
            dynamodb_proxy: true,
            iam: IamMode::Enforce,
            metrics: true,
        }
    }
}

pub struct Stack {
    pub api_url: Option<String>,
    pub invoke_url: Option<String>,
    /// DynamoDB Local itself (tests and tools).
    pub dynamodb_endpoint: String,
    /// The counting, fault-injecting proxy the functions talk to.
    pub dynamodb_proxy: Option<DynamoDbProxy>,
    /// Kafka, SES and the MSK trigger.
    pub messaging: Option<Messaging>,
    pub table_name: Option<String>,
    pub pools: BTreeMap<String, Arc<Pool>>,
    /// Each function's resolved environment (template + env.local.json), for the test contract.
    pub function_env: BTreeMap<String, BTreeMap<String, String>>,
    pub workspace_root: PathBuf,
    /// The operator's `shop-admin` binary (built with the functions), for the tests.
    pub admin_command: PathBuf,
    /// What the schedule fires, one line each (empty when it is off).
    pub schedules: Vec<String>,
    /// Every function's role, its credentials and what it used (the least-privilege report).
    pub iam: Authorizer,
    /// The functions' metrics and the template's alarms on them.
    pub cloudwatch: CloudWatch,
    /// Where the functions' log files are (see [`crate::emulators::logs`]).
    pub function_logs: PathBuf,
    /// The API's one line per request, on or off (see [`Stack::show_requests`]).
    request_lines: Arc<std::sync::atomic::AtomicBool>,
    console: Console,
    ddb: DynamoDbLocal,
    servers: Vec<JoinHandle<()>>,
}

impl Stack {
    pub async fn start(ws: &Workspace, template: &Template, jar_dir: &std::path::Path, opts: Options) -> Result<Self> {
        let logs = ws.logs_dir();
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;

        // The roles first: a policy the evaluator cannot judge stops the stack before anything runs.
        let template_path = ws.root.join("template.yaml");
        let template_text =
            std::fs::read_to_string(&template_path).with_context(|| format!("reading {}", template_path.display()))?;
        let roles = Roles::from_template(&template_text).context("reading the functions' IAM policies")?;
        let iam = Authorizer::new(roles, opts.iam);
        let cloudwatch = CloudWatch::from_template(&template_text, crate::emulators::cloudwatch::alarms::Alarms::SCALE)
            .context("reading the template's alarms")?;
        if opts.iam != IamMode::Enforce {
            tracing::warn!("IAM: --iam {:?}: requests the roles do not allow are not refused", opts.iam);
        }

        let ddb_port = crate::process::free_port()?;
        let ddb_log = logs.join("dynamodb-local.log");
        let _ = std::fs::remove_file(&ddb_log);
        let step = Step::start(format!("starting DynamoDB Local on port {ddb_port}"));
        let ddb = progress::run(step, DynamoDbLocal::start(jar_dir, ddb_port, &ddb_log)).await?;
        let mut stack = Self {
            api_url: None,
            invoke_url: None,
            dynamodb_endpoint: ddb.endpoint.clone(),
            dynamodb_proxy: None,
            messaging: None,
            table_name: template.tables.first().map(|t| t.name.clone()),
            pools: BTreeMap::new(),
            function_env: BTreeMap::new(),
            workspace_root: ws.root.clone(),
            admin_command: ws.binary_of(opts.profile, "shop-admin"),
            schedules: Vec::new(),
            iam,
            cloudwatch,
            function_logs: opts.function_logs.clone().unwrap_or_else(|| logs.clone()),
            request_lines: Arc::default(),
            console: opts.console,
            ddb,
            servers: Vec::new(),
        };
        // From here on, a failure must still stop what already runs.
        match stack.start_rest(ws, template, &opts).await {
            Ok(()) => Ok(stack),
            Err(e) => {
                stack.stop().await;
                Err(e)
            }
        }
    }

    async fn start_rest(&mut self, ws: &Workspace, template: &Template, opts: &Options) -> Result<()> {
        let client = self.ddb.client();
        let step = Step::start(format!("creating tables ({})", names(template.tables.iter().map(|t| &t.name))));
        progress::run(step, async {
            for table in &template.tables {
                dynamodb_local::create_table(&client, table).await?;
            }
            Ok(())
        })
        .await?;
        let proxy = match opts.dynamodb_proxy {
            true => Some(
                DynamoDbProxy::start(
                    &self.dynamodb_endpoint,
                    DynamoDbProxy::faults_from_env()?,
                    self.iam.clone(),
                    crate::emulators::dynamodb_proxy::index_partitions::Indexes::from_template(&template.tables),
                )
                .await?,
            ),
            false => None,
        };
        let functions_ddb = proxy.as_ref().map_or(self.dynamodb_endpoint.clone(), |p| p.endpoint.clone());
        let function_logs = self.function_logs.clone();
        self.dynamodb_proxy = proxy.clone();

        let step = Step::start("starting Kafka (tansu) and SES (moto)");
        self.messaging = Some(progress::run(step, Messaging::start(template, &ws.logs_dir(), &self.iam)).await?);

        let overrides = EnvOverrides::load(&ws.root.join("env.local.json"))?;
        // The API's port is fixed before the functions start, so env.local.json can hand its URL to
        // them as `${LocalApiUrl}` (the payments function calls the mock gateway through it; the
        // notifier's password-reset links, `STOREFRONT_URL`, open the storefront served at its root).
        // The listener is bound here and kept: a port merely found free could be taken by
        // another program before the gateway binds it.
        let api_listener = match opts.api_port {
            Some(port) => Some(bind(port).await.context("starting the API Gateway emulation")?),
            None => None,
        };
        let api_url = api_listener.as_ref().map(|l| l.local_addr()).transpose()?.map(|a| format!("http://{a}"));
        let functions: Vec<_> = template
            .functions
            .iter()
            .filter(|f| opts.only.as_ref().is_none_or(|only| only.contains(&f.logical_id)))
            .collect();
        let step = Step::start(format!("starting functions ({})", names(functions.iter().map(|f| &f.logical_id))));
        let result: Result<()> = async {
            for f in &functions {
                let declared = crate::template::env_vars::with_local_api_url(overrides.apply(f), api_url.as_deref());
                self.function_env.insert(f.logical_id.clone(), declared.clone());
                let binary = ws.binary_of(opts.profile, &f.binary);
                let spec = FunctionSpec {
                    logical_id: f.logical_id.clone(),
                    env: {
                        let mut env = lambda_environment(declared, f, &binary, &functions_ddb);
                        // The role's credentials, as Lambda hands them to the function.
                        if let Some(credentials) = self.iam.credentials(&f.logical_id) {
                            env.extend(credentials.env().map(|(k, v)| (k.to_owned(), v)));
                        }
                        if !opts.metrics {
                            env.insert("METRICS_DISABLED".to_owned(), "true".to_owned());
                        }
                        match &self.messaging {
                            Some(m) => m.function_env(env),
                            None => env,
                        }
                    },
                    binary,
                    timeout: Duration::from_secs(f.timeout_secs),
                    log_dir: Some(function_logs.clone()),
                    echo_logs: opts.console == Console::Verbose,
                    metrics: Some(self.cloudwatch.metrics.clone()),
                };
                self.pools.insert(f.logical_id.clone(), Pool::start(spec, opts.pool_size, opts.freeze)?);
            }
            Ok(())
        }
        .await;
        progress::run(step, async { result }).await?;
        if let Some(messaging) = &mut self.messaging {
            self.servers.extend(messaging.start_triggers(&self.pools, &self.dynamodb_endpoint)?);
        }

        self.servers.push(self.cloudwatch.start());

        let schedules = crate::emulators::schedule::from_template(&ws.root.join("template.yaml"))?;
        let (timers, lines) = crate::emulators::schedule::start(&schedules, &self.pools, opts.schedule);
        self.servers.extend(timers);
        self.schedules = lines;

        if let Some(listener) = api_listener {
            let routes = functions
                .iter()
                .flat_map(|f| f.routes.iter().map(|r| (r.clone(), self.pools[&f.logical_id].clone())))
                .collect();
            // Local extras behind the API routes: the mailbox JSON, then the storefront's files.
            // The gateway hands them only GET and HEAD and adds no CORS headers to their answers:
            // they are for the page on this origin, not for any website open in the browser.
            let mut local = crate::stack::storefront::router(ws.root.join("storefront"));
            if let Some(messaging) = &self.messaging {
                local = messaging.mail_router().merge(local);
            }
            let app = Gateway::new(routes, template.cors.clone())
                .with_local(local)
                .with_access_log(self.request_lines.clone())
                .router();
            let (url, handle) = serve_on(app, listener)?;
            self.api_url = Some(url);
            self.servers.push(handle);
        }
        if let Some(port) = opts.invoke_port {
            let mut app = invoke::router(self.pools.clone())
                .merge(crate::emulators::logs::router(function_logs.clone(), self.pools.keys().cloned().collect()))
                .merge(crate::emulators::iam::control_router(&self.iam))
                .merge(self.cloudwatch.control_router());
            if let Some(proxy) = &proxy {
                app = app.merge(proxy.control_router());
            }
            if let Some(messaging) = &self.messaging {
                app = app.merge(messaging.control_router());
            }
            let (url, handle) = serve(app, port).await.context("starting the Lambda Invoke API")?;
            self.invoke_url = Some(url);
            self.servers.push(handle);
        }
        Ok(())
    }

    /// From now on the API prints one line per request, unless the console is
    /// [`Console::Quiet`] (`up` calls it once the walkthrough is printed, so the seed's requests do
    /// not run through it).
    pub fn show_requests(&self) {
        if self.console != Console::Quiet {
            self.request_lines.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The test contract: what `cargo local test` passes to the tests and `up` writes to
    /// `target/local-stack.env`.
    pub fn contract_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("SHOP_DYNAMODB_ENDPOINT".to_owned(), self.dynamodb_endpoint.clone()),
            ("SHOP_ADMIN_EMAIL".to_owned(), ADMIN_EMAIL.to_owned()),
            ("SHOP_ADMIN_PASSWORD".to_owned(), ADMIN_PASSWORD.to_owned()),
            ("SHOP_WORKSPACE".to_owned(), self.workspace_root.display().to_string()),
            ("SHOP_ADMIN_COMMAND".to_owned(), self.admin_command.display().to_string()),
            ("SHOP_FUNCTION_LOGS".to_owned(), self.function_logs.display().to_string()),
            ("AWS_REGION".to_owned(), REGION.to_owned()),
            ("AWS_DEFAULT_REGION".to_owned(), REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID".to_owned(), "local".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "local".to_owned()),
        ];
        if let Some(url) = &self.api_url {
            env.push(("SHOP_API_URL".into(), url.clone()));
        }
        if let Some(url) = &self.invoke_url {
            env.push(("SHOP_INVOKE_URL".into(), url.clone()));
        }
        if let Some(messaging) = &self.messaging {
            env.extend(messaging.contract_env());
        }
        if let Some(table) = &self.table_name {
            env.push(("SHOP_TABLE_NAME".into(), table.clone()));
        }
        // JWT settings as the functions see them, so tests can mint and check tokens.
        if let Some(vars) = self.function_env.values().find(|v| v.contains_key("JWT_SECRET")) {
            for (var, key) in [
                ("JWT_SECRET", "SHOP_JWT_SECRET"),
                ("JWT_ISSUER", "SHOP_JWT_ISSUER"),
                ("JWT_AUDIENCE", "SHOP_JWT_AUDIENCE"),
            ] {
                if let Some(v) = vars.get(var) {
                    env.push((key.into(), v.clone()));
                }
            }
        }
        env
    }

    pub async fn stop(self) {
        for server in &self.servers {
            server.abort();
        }
        futures::future::join_all(self.pools.values().map(|p| p.shutdown())).await;
        if let Some(proxy) = &self.dynamodb_proxy {
            proxy.stop();
        }
        if let Some(messaging) = self.messaging {
            messaging.stop().await;
        }
        self.ddb.stop().await;
    }
}

/// What Lambda adds to a function's declared variables, pointing the SDK at the emulators.
/// These win over declared variables, as Lambda's reserved variables do; the role's credentials
/// are added by the caller (see [`crate::emulators::iam::authorizer`]).
fn lambda_environment(
    mut env: BTreeMap<String, String>,
    f: &crate::template::Function,
    binary: &std::path::Path,
    dynamodb_endpoint: &str,
) -> BTreeMap<String, String> {
    let task_root = binary.parent().map(|p| p.display().to_string()).unwrap_or_default();
    let fixed = [
        ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_endpoint.to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_DEFAULT_REGION", REGION.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", f.logical_id.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", f.memory_mb.to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", f.logical_id)),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("_HANDLER", "bootstrap".to_owned()),
        ("LAMBDA_TASK_ROOT", task_root),
        ("TZ", ":UTC".to_owned()),
        ("LANG", "en_US.UTF-8".to_owned()),
        // The process environment is otherwise cleared, so a developer's AWS_PROFILE or
        // AWS_ENDPOINT_URL cannot leak into a function and make local differ from Lambda.
        ("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())),
    ];
    for (k, v) in fixed {
        env.insert(k.to_owned(), v);
    }
    if let Ok(v) = std::env::var("RUST_BACKTRACE") {
        env.insert("RUST_BACKTRACE".into(), v);
    }
    env
}

fn names<'a>(items: impl Iterator<Item = &'a String>) -> String {
    items.map(String::as_str).collect::<Vec<_>>().join(", ")
}

async fn bind(port: u16) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(("127.0.0.1", port)).await.with_context(|| format!("binding 127.0.0.1:{port}"))
}

/// Serves `app` on 127.0.0.1:`port` (0 = random), returning its base URL.
async fn serve(app: axum::Router, port: u16) -> Result<(String, JoinHandle<()>)> {
    serve_on(app, bind(port).await?)
}

fn serve_on(app: axum::Router, listener: tokio::net::TcpListener) -> Result<(String, JoinHandle<()>)> {
    let addr = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        if let Err(e) = axum::serve(listener, service).await {
            tracing::error!("server on {addr} stopped: {e}");
        }
    });
    Ok((format!("http://{addr}"), handle))
}
