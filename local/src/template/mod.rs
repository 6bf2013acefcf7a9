//! Reads `template.yaml`, the single source of truth for the stack.
//!
//! The local stack must never carry a second definition of a route, a table or an environment
//! variable: everything it runs is derived from the SAM template here.
//!
//! CloudFormation templates are YAML with custom tags (`!Ref`, `!Sub`, `!GetAtt`, ...). A plain
//! YAML parser rejects them or drops them; `serde_yaml_ng` keeps them as [`serde_yaml_ng::Value::Tagged`], so we
//! walk the tree once and *resolve* what can be known locally:
//!
//! * `!Ref Param` becomes the parameter's `Default` (a `CommaDelimitedList` becomes a list),
//! * `!Ref ShopTable` (any `AWS::DynamoDB::Table`) becomes the local table name, its logical id;
//!   `!GetAtt T.Arn` / `T.StreamArn` its ARN and its stream's (`…/stream/local`: the local
//!   stream emulation finds the table by name);
//! * `!GetAtt Q.Arn` / `Q.QueueName` of an `AWS::SQS::Queue` is the local queue's ARN and name (its
//!   logical id; the stack creates it in moto, see `crate::emulators::sqs`),
//! * `!Ref P` of an `AWS::IAM::ManagedPolicy` is `arn:aws:iam::123456789012:policy/P`, and
//!   `!GetAtt R.Arn` of an `AWS::IAM::Role` is `arn:aws:iam::123456789012:role/R` (what the IAM
//!   emulation, `crate::emulators::iam`, looks them up by),
//! * `!Sub "...${X}..."` substitutes parameters, tables, `${T.Arn}` and the pseudo parameters
//!   `AWS::Region` (`us-east-1`), `AWS::AccountId` (`123456789012`), `AWS::Partition` (`aws`) and
//!   `AWS::StackName` (`shop-local`),
//! * `!Join`, `!Select` and `!Split` are computed; `!If` takes the branch its condition selects,
//!   the template's `Conditions` being evaluated once (`!Equals`, `!Not`, `!And`, `!Or`,
//!   `Condition:` references); `!Ref AWS::NoValue` removes the key or list item it is the value of,
//! * anything else (a `!GetAtt` of another resource, `{{resolve:...}}` dynamic references, ...) is
//!   left as a plain string, and an intrinsic that cannot be computed (`!FindInMap`, `!If` on an
//!   unknown condition, ...) in its long form (`{"Fn::FindInMap": [...]}`), so it is visible, not
//!   silently dropped; `env.local.json` can override it.
//!
//! The result is ordinary JSON ([`serde_json::Value`]), which the rest of the crate reads.
//!
//! Both views resolve parameters with [`LOCAL_PARAMETER_OVERRIDES`] over the defaults: the values
//! the local stack is deployed with. [`Template`] is what the stack runs: every resource,
//! whatever its `Condition` (the local stack runs every function and the Kafka pieces). IAM reads
//! the roles from `Resolved`, without the resources whose `Condition` is false.

pub mod env_vars;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value as Json, json};
use serde_yaml_ng::Value as Yaml;

/// What a deployed stack would see as `AWS::Region`; every local client uses it too.
pub const REGION: &str = "us-east-1";
/// `AWS::StackName` of the local stack.
pub const STACK_NAME: &str = "shop-local";
/// `AWS::AccountId`: the account id AWS documentation uses in examples.
pub const ACCOUNT_ID: &str = "123456789012";

/// The parameter values the local stack stands for, where the template's defaults describe
/// another deployment: like `sam local invoke --parameter-overrides`, in one place.
///
/// The defaults deploy no Kafka (`MskClusterArn` and `KafkaBootstrapServers` empty, so `HasKafka`
/// is false: no outbox relay, no notifier, no `PublishEventsPolicy`) and no mock gateway
/// (`DeployMockGateway` false). The local stack runs all of them, so their roles must be read as
/// a stack with Kafka and the mock would have them: a local MSK cluster ARN (account
/// [`ACCOUNT_ID`], region [`REGION`]; the cluster's name is the stack's), any non-empty bootstrap
/// servers (the relay's `KAFKA_BOOTSTRAP_SERVERS` is set to the local broker anyway, see
/// `crate::stack::messaging`), and the mock gateway on.
///
/// Applied to everything the stack reads, so that the MSK trigger's `eventSourceArn` and the
/// ARNs IAM judges it on are the same cluster's.
pub const LOCAL_PARAMETER_OVERRIDES: &[(&str, &str)] = &[
    ("MskClusterArn", "arn:aws:kafka:us-east-1:123456789012:cluster/shop-local/00000000-0000-0000-0000-000000000000-1"),
    ("KafkaBootstrapServers", "127.0.0.1:9092"),
    ("DeployMockGateway", "true"),
];

/// The parts of the template the local stack needs.
#[derive(Debug, Clone)]
pub struct Template {
    pub tables: Vec<Table>,
    /// `AWS::SQS::Queue` logical ids (locally, the queue names).
    pub queues: Vec<String>,
    pub functions: Vec<Function>,
    /// `CorsConfiguration` of the HTTP API, if any.
    pub cors: Option<Cors>,
}

/// An `AWS::DynamoDB::Table`; locally the table name is its logical id.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    /// Resolved `Properties`, read by `dynamodb_local` to create the table.
    pub properties: Json,
}

/// An `AWS::Serverless::Function` with Globals applied.
#[derive(Debug, Clone)]
pub struct Function {
    pub logical_id: String,
    /// `Metadata.BuildProperties.Binary`: the cargo binary target, `target/<profile>/<binary>`.
    pub binary: String,
    pub memory_mb: u64,
    pub timeout_secs: u64,
    /// Globals + the function's own variables, resolved (before `env.local.json` overrides).
    pub environment: BTreeMap<String, String>,
    pub routes: Vec<Route>,
    /// The resolved `Events` map (logical name → `{Type, Properties}`), for triggers other than
    /// HttpApi (e.g. `MSK`, read by `msk`).
    pub events: serde_json::Map<String, Json>,
}

/// One `HttpApi` event: `Method` (upper case, `ANY` allowed) and `Path` (`{param}`, `{proxy+}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: String,
    pub path: String,
}

/// `CorsConfiguration` of an `AWS::Serverless::HttpApi`.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    pub allow_origins: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<u64>,
    pub allow_credentials: bool,
}

impl Template {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let doc: Yaml = serde_yaml_ng::from_str(text)?;
        // The template's own defaults: the stack's functions and environment are read as they
        // are declared (the IAM resolution alone takes LOCAL_PARAMETER_OVERRIDES).
        let resolver = Resolver::new(&doc, LOCAL_PARAMETER_OVERRIDES);
        let resources = doc.get("Resources").and_then(Yaml::as_mapping).context("no Resources")?;
        let globals = resolver.resolve(doc.get("Globals").and_then(|g| g.get("Function")).unwrap_or(&Yaml::Null));

        let mut tables = Vec::new();
        let mut queues = Vec::new();
        let mut functions = Vec::new();
        let mut cors = None;
        for (id, resource) in resources {
            let id = id.as_str().context("resource logical id is not a string")?;
            let properties = resolver.resolve(resource.get("Properties").unwrap_or(&Yaml::Null));
            match resource.get("Type").and_then(Yaml::as_str) {
                Some("AWS::DynamoDB::Table") => tables.push(Table { name: id.to_owned(), properties }),
                Some("AWS::SQS::Queue") => queues.push(id.to_owned()),
                Some("AWS::Serverless::HttpApi") => {
                    if let Some(c) = properties.get("CorsConfiguration") {
                        cors = Some(Cors::from_json(c));
                    }
                }
                Some("AWS::Serverless::Function") => {
                    let metadata = resolver.resolve(resource.get("Metadata").unwrap_or(&Yaml::Null));
                    functions.push(Function::from_json(id, &globals, &properties, &metadata)?);
                }
                _ => {}
            }
        }
        if functions.is_empty() {
            bail!("no AWS::Serverless::Function in the template");
        }
        Ok(Self { tables, queues, functions, cors })
    }

    pub fn function(&self, logical_id: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.logical_id == logical_id)
    }
}

impl Function {
    fn from_json(id: &str, globals: &Json, props: &Json, metadata: &Json) -> Result<Self> {
        // A function's own setting wins over Globals, as in SAM.
        let setting = |key: &str| props.get(key).or_else(|| globals.get(key));
        let number = |key: &str, default: u64| setting(key).and_then(as_u64).unwrap_or(default);

        let mut environment = BTreeMap::new();
        for source in [globals, props] {
            if let Some(vars) = source.pointer("/Environment/Variables").and_then(Json::as_object) {
                for (k, v) in vars {
                    environment.insert(k.clone(), scalar_string(v));
                }
            }
        }

        let mut routes = Vec::new();
        if let Some(events) = props.get("Events").and_then(Json::as_object) {
            for event in events.values() {
                if event.get("Type").and_then(Json::as_str) != Some("HttpApi") {
                    continue;
                }
                let p = event.get("Properties").cloned().unwrap_or(json!({}));
                // An HttpApi event without Path/Method is the catch-all `$default` route.
                routes.push(Route {
                    method: p.get("Method").and_then(Json::as_str).unwrap_or("ANY").to_ascii_uppercase(),
                    path: p.get("Path").and_then(Json::as_str).unwrap_or("/{proxy+}").to_owned(),
                });
            }
        }

        let binary = metadata
            .pointer("/BuildProperties/Binary")
            .and_then(Json::as_str)
            .with_context(|| format!("{id}: Metadata.BuildProperties.Binary is required to find the binary"))?
            .to_owned();

        Ok(Self {
            logical_id: id.to_owned(),
            binary,
            memory_mb: number("MemorySize", 128),
            timeout_secs: number("Timeout", 3),
            environment,
            routes,
            events: props.get("Events").and_then(Json::as_object).cloned().unwrap_or_default(),
        })
    }
}

impl Cors {
    fn from_json(c: &Json) -> Self {
        let list = |key: &str| -> Vec<String> {
            match c.get(key) {
                Some(Json::Array(items)) => items.iter().map(scalar_string).collect(),
                Some(Json::String(s)) => s.split(',').map(|s| s.trim().to_owned()).collect(),
                _ => Vec::new(),
            }
        };
        Self {
            allow_origins: list("AllowOrigins"),
            allow_methods: list("AllowMethods"),
            allow_headers: list("AllowHeaders"),
            expose_headers: list("ExposeHeaders"),
            max_age: c.get("MaxAge").and_then(as_u64),
            allow_credentials: c.get("AllowCredentials").and_then(Json::as_bool).unwrap_or(false),
        }
    }
}

/// Numbers sometimes arrive as strings (`"10"`) in templates.
fn as_u64(v: &Json) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// Environment variables are strings in Lambda; lists (a resolved `CommaDelimitedList`) join back.
fn scalar_string(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        Json::Array(items) => items.iter().map(scalar_string).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Resolves intrinsic functions against what is known locally.
struct Resolver {
    /// Parameter values (defaults, then overrides); `CommaDelimitedList` ones are lists.
    parameters: BTreeMap<String, Json>,
    tables: Vec<String>,
    queues: Vec<String>,
    /// `AWS::IAM::ManagedPolicy` logical ids: `!Ref` gives their local ARN.
    managed_policies: Vec<String>,
    /// `AWS::IAM::Role` logical ids: `!GetAtt R.Arn` gives their local ARN.
    roles: Vec<String>,
    /// The template's `Conditions`, evaluated once; an `Err` says why one cannot be.
    conditions: BTreeMap<String, Result<bool, String>>,
}

impl Resolver {
    /// `overrides` replace parameter defaults, as `--parameter-overrides` does (see
    /// [`LOCAL_PARAMETER_OVERRIDES`]).
    fn new(doc: &Yaml, overrides: &[(&str, &str)]) -> Self {
        let mut parameters = BTreeMap::new();
        if let Some(params) = doc.get("Parameters").and_then(Yaml::as_mapping) {
            for (name, p) in params {
                let Some(name) = name.as_str() else { continue };
                let value = match overrides.iter().find(|(n, _)| *n == name) {
                    Some((_, value)) => (*value).to_owned(),
                    None => match p.get("Default") {
                        Some(default) => yaml_scalar(default),
                        None => continue,
                    },
                };
                let value = if p.get("Type").and_then(Yaml::as_str) == Some("CommaDelimitedList") {
                    Json::Array(value.split(',').map(|s| Json::String(s.trim().to_owned())).collect())
                } else {
                    Json::String(value)
                };
                parameters.insert(name.to_owned(), value);
            }
        }
        let of_type = |kind: &str| -> Vec<String> {
            resources(doc)
                .filter(|(_, r)| r.get("Type").and_then(Yaml::as_str) == Some(kind))
                .map(|(id, _)| id.to_owned())
                .collect()
        };
        let mut resolver = Self {
            parameters,
            tables: of_type("AWS::DynamoDB::Table"),
            queues: of_type("AWS::SQS::Queue"),
            managed_policies: of_type("AWS::IAM::ManagedPolicy"),
            roles: of_type("AWS::IAM::Role"),
            conditions: BTreeMap::new(),
        };
        let declared = doc.get("Conditions").and_then(Yaml::as_mapping).cloned().unwrap_or_default();
        let conditions = declared
            .keys()
            .filter_map(Yaml::as_str)
            .map(|name| (name.to_owned(), resolver.condition(&declared, name, 0)))
            .collect();
        resolver.conditions = conditions;
        resolver
    }

    /// The value of condition `name` (`Conditions` may refer to each other).
    fn condition(&self, declared: &serde_yaml_ng::Mapping, name: &str, depth: usize) -> Result<bool, String> {
        if depth > 32 {
            return Err(format!("condition {name}: the Conditions refer to each other in a cycle"));
        }
        let expression = declared.get(name).ok_or_else(|| format!("no condition {name} in Conditions"))?;
        self.truth(declared, expression, depth + 1).map_err(|e| format!("condition {name}: {e}"))
    }

    /// `!Equals`, `!Not`, `!And`, `!Or` and `Condition: Name`, the functions a condition is made of.
    fn truth(&self, declared: &serde_yaml_ng::Mapping, expression: &Yaml, depth: usize) -> Result<bool, String> {
        let (function, arg) = intrinsic_of(expression, true)
            .ok_or_else(|| format!("{} is not a condition function", yaml_scalar(expression)))?;
        if function == "Condition" {
            return self.condition(declared, &yaml_scalar(arg), depth);
        }
        let items = arg.as_sequence().map(Vec::as_slice).unwrap_or_default();
        match (function.as_str(), items) {
            ("Equals", [a, b]) => Ok(comparable(&self.resolve(a)) == comparable(&self.resolve(b))),
            ("Not", [c]) => Ok(!self.truth(declared, c, depth)?),
            ("And", items) if !items.is_empty() => {
                items.iter().try_fold(true, |all, c| Ok(self.truth(declared, c, depth)? && all))
            }
            ("Or", items) if !items.is_empty() => {
                items.iter().try_fold(false, |any, c| Ok(self.truth(declared, c, depth)? || any))
            }
            ("Equals" | "Not" | "And" | "Or", _) => Err(format!("Fn::{function} with the wrong number of arguments")),
            _ => Err(format!("Fn::{function} is not evaluated locally")),
        }
    }

    fn resolve(&self, v: &Yaml) -> Json {
        self.value(v).unwrap_or(Json::Null)
    }

    /// The resolved value; `None` is `AWS::NoValue`, which removes the key or item it is the value of.
    fn value(&self, v: &Yaml) -> Option<Json> {
        if let Some((name, arg)) = intrinsic_of(v, false) {
            return self.intrinsic(&name, arg);
        }
        Some(match v {
            Yaml::Null => Json::Null,
            Yaml::Bool(b) => Json::Bool(*b),
            Yaml::Number(n) => serde_json::to_value(n).unwrap_or(Json::Null),
            Yaml::String(s) => Json::String(s.clone()),
            Yaml::Sequence(items) => Json::Array(items.iter().filter_map(|i| self.value(i)).collect()),
            Yaml::Mapping(m) => {
                let mut out = Map::new();
                for (k, v) in m {
                    if let Some(v) = self.value(v) {
                        out.insert(yaml_scalar(k), v);
                    }
                }
                Json::Object(out)
            }
            // A tag that is not an intrinsic's: its value.
            Yaml::Tagged(tagged) => return self.value(&tagged.value),
        })
    }

    fn intrinsic(&self, name: &str, arg: &Yaml) -> Option<Json> {
        let args = arg.as_sequence().map(Vec::as_slice).unwrap_or_default();
        let resolved = match (name, args) {
            ("Ref", _) => return self.reference(&yaml_scalar(arg)),
            ("Sub", [template, vars, ..]) => {
                // [template, {Var: value}]: the explicit variables win.
                let vars: BTreeMap<String, String> = match self.resolve(vars) {
                    Json::Object(m) => m.iter().map(|(k, v)| (k.clone(), scalar_string(v))).collect(),
                    _ => BTreeMap::new(),
                };
                Some(Json::String(self.substitute(&yaml_scalar(template), &vars)))
            }
            ("Sub", [template]) => Some(Json::String(self.substitute(&yaml_scalar(template), &BTreeMap::new()))),
            ("Sub", _) => Some(Json::String(self.substitute(&yaml_scalar(arg), &BTreeMap::new()))),
            ("GetAtt", _) => {
                let target = match arg {
                    Yaml::Sequence(parts) => parts.iter().map(yaml_scalar).collect::<Vec<_>>().join("."),
                    other => yaml_scalar(other),
                };
                Some(Json::String(self.attribute(&target).unwrap_or(target)))
            }
            ("If", [condition, then, otherwise]) => match self.conditions.get(&yaml_scalar(condition)) {
                Some(Ok(true)) => return self.value(then),
                Some(Ok(false)) => return self.value(otherwise),
                _ => None,
            },
            ("Join", [delimiter, list]) => match self.resolve(list) {
                Json::Array(items) => Some(Json::String(
                    items.iter().map(scalar_string).collect::<Vec<_>>().join(&yaml_scalar(delimiter)),
                )),
                _ => None,
            },
            ("Select", [index, list]) => {
                let index = as_u64(&self.resolve(index));
                match self.resolve(list) {
                    Json::Array(items) => index.and_then(|i| items.get(usize::try_from(i).ok()?).cloned()),
                    _ => None,
                }
            }
            ("Split", [delimiter, source]) => match self.resolve(source) {
                Json::String(s) => Some(Json::Array(
                    s.split(yaml_scalar(delimiter).as_str()).map(|p| Json::String(p.to_owned())).collect(),
                )),
                _ => None,
            },
            _ => None,
        };
        // What cannot be resolved locally stays visible, in long form, with its argument resolved.
        Some(resolved.unwrap_or_else(|| json!({ format!("Fn::{name}"): self.resolve(arg) })))
    }

    /// `None` for `AWS::NoValue`.
    fn reference(&self, name: &str) -> Option<Json> {
        Some(match name {
            "AWS::NoValue" => return None,
            "AWS::Region" => json!(REGION),
            "AWS::StackName" => json!(STACK_NAME),
            "AWS::AccountId" => json!(ACCOUNT_ID),
            "AWS::Partition" => json!("aws"),
            "AWS::URLSuffix" => json!("amazonaws.com"),
            _ if self.managed_policies.iter().any(|p| p == name) => json!(managed_policy_arn(name)),
            _ => match self.parameters.get(name) {
                Some(v) => v.clone(),
                // Tables resolve to their local name (the logical id); unknown names stay as-is.
                None => Json::String(name.to_owned()),
            },
        })
    }

    fn attribute(&self, target: &str) -> Option<String> {
        let (resource, attr) = target.split_once('.')?;
        let name = resource.to_owned();
        if self.tables.contains(&name) {
            return match attr {
                "Arn" => Some(format!("arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{resource}")),
                "StreamArn" => Some(format!("arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{resource}/stream/local")),
                _ => None,
            };
        }
        if self.queues.contains(&name) {
            return match attr {
                "Arn" => Some(format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{resource}")),
                "QueueName" => Some(name),
                _ => None,
            };
        }
        if self.roles.contains(&name) && attr == "Arn" {
            return Some(role_arn(resource));
        }
        if self.managed_policies.contains(&name) && attr == "PolicyArn" {
            return Some(managed_policy_arn(resource));
        }
        None
    }

    /// `${Name}` substitution; `${!Literal}` is the escape for a literal `${Literal}`.
    fn substitute(&self, template: &str, vars: &BTreeMap<String, String>) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                return out;
            };
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str(&format!("${{{literal}}}"));
            } else if let Some(v) = vars.get(name) {
                out.push_str(v);
            } else if name.contains('.') {
                out.push_str(&self.attribute(name).unwrap_or_else(|| format!("${{{name}}}")));
            } else {
                out.push_str(&scalar_string(&self.reference(name).unwrap_or(Json::Null)));
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// `!Name arg`, or its long form `{"Fn::Name": arg}` / `{"Ref": arg}`: the function's name and
/// argument. `Condition: Name` only counts inside a condition (`in_condition`), where it refers
/// to another one; elsewhere it is an ordinary key.
fn intrinsic_of(v: &Yaml, in_condition: bool) -> Option<(String, &Yaml)> {
    match v {
        Yaml::Tagged(tagged) => Some((tagged.tag.to_string().trim_start_matches('!').to_owned(), &tagged.value)),
        Yaml::Mapping(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next()?;
            let k = k.as_str()?;
            let name = k
                .strip_prefix("Fn::")
                .or((k == "Ref").then_some("Ref"))
                .or((in_condition && k == "Condition").then_some("Condition"))?;
            Some((name.to_owned(), arg))
        }
        _ => None,
    }
}

/// `Fn::Equals` compares values as strings (`"10"` equals `10`); lists and maps as they are.
fn comparable(v: &Json) -> Json {
    match v {
        Json::Array(_) | Json::Object(_) => v.clone(),
        scalar => Json::String(scalar_string(scalar)),
    }
}

/// `(logical id, resource)` of every resource of the template.
fn resources(doc: &Yaml) -> impl Iterator<Item = (&str, &Yaml)> {
    doc.get("Resources").and_then(Yaml::as_mapping).into_iter().flatten().filter_map(|(id, r)| Some((id.as_str()?, r)))
}

/// The local ARN of an `AWS::IAM::ManagedPolicy` of the template (`!Ref` of it).
pub fn managed_policy_arn(logical_id: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT_ID}:policy/{logical_id}")
}

/// The local ARN of an `AWS::IAM::Role` of the template (`!GetAtt R.Arn`).
pub fn role_arn(logical_id: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT_ID}:role/{logical_id}")
}

/// The template as IAM reads it: resolved with [`LOCAL_PARAMETER_OVERRIDES`], and without the
/// resources whose `Condition` is false (CloudFormation does not create them, so no role has
/// them). Every condition must evaluate: a role read from a guess could allow silently.
pub(crate) struct Resolved {
    resolver: Resolver,
    /// `Globals.Function`, resolved.
    pub globals: Json,
    /// Every resource the stack has, by logical id.
    pub resources: BTreeMap<String, ResolvedResource>,
    /// Resources left out, logical id → the false condition, for messages.
    pub absent: BTreeMap<String, String>,
}

/// One resource, resolved.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedResource {
    /// `Type`, e.g. `AWS::Serverless::Function`.
    pub kind: String,
    pub properties: Json,
    pub metadata: Json,
}

impl Resolved {
    pub(crate) fn parse(text: &str) -> Result<Self> {
        let doc: Yaml = serde_yaml_ng::from_str(text).context("the template is not YAML")?;
        let resolver = Resolver::new(&doc, LOCAL_PARAMETER_OVERRIDES);
        if let Some(Err(e)) = resolver.conditions.values().find(|c| c.is_err()) {
            bail!("{e}");
        }
        let mut resources = BTreeMap::new();
        let mut absent = BTreeMap::new();
        for (id, r) in self::resources(&doc) {
            if let Some(condition) = r.get("Condition").map(yaml_scalar) {
                match resolver.conditions.get(&condition) {
                    Some(Ok(true)) => {}
                    Some(Ok(false)) => {
                        absent.insert(id.to_owned(), condition);
                        continue;
                    }
                    _ => bail!("{id}: its Condition {condition} is not in Conditions"),
                }
            }
            let resolve = |key: &str| resolver.resolve(r.get(key).unwrap_or(&Yaml::Null));
            let kind = r.get("Type").and_then(Yaml::as_str).with_context(|| format!("{id}: no Type"))?;
            let resource = ResolvedResource {
                kind: kind.to_owned(),
                properties: resolve("Properties"),
                metadata: resolve("Metadata"),
            };
            resources.insert(id.to_owned(), resource);
        }
        let globals = resolver.resolve(doc.get("Globals").and_then(|g| g.get("Function")).unwrap_or(&Yaml::Null));
        Ok(Self { resolver, globals, resources, absent })
    }

    /// The resources of one `Type`.
    pub(crate) fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a str, &'a ResolvedResource)> {
        self.resources.iter().filter(move |(_, r)| r.kind == kind).map(|(id, r)| (id.as_str(), r))
    }

    /// Resolves the intrinsics of a JSON value (long form: `{"Fn::Sub": …}`, `{"Ref": …}`) as
    /// those of the template are, e.g. a SAM policy template's definition.
    pub(crate) fn resolve_json(&self, value: &Json) -> Json {
        match serde_yaml_ng::to_value(value) {
            Ok(yaml) => self.resolver.resolve(&yaml),
            Err(_) => value.clone(),
        }
    }
}

fn yaml_scalar(v: &Yaml) -> String {
    match v {
        Yaml::String(s) => s.clone(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Null => String::new(),
        other => serde_yaml_ng::to_string(other).unwrap_or_default().trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  Stage: { Type: String, Default: dev }
  Origins: { Type: CommaDelimitedList, Default: "https://a.example, https://b.example" }
Globals:
  Function:
    Timeout: 10
    MemorySize: 256
    Environment:
      Variables:
        TABLE_NAME: !Ref Table
        ISSUER: !Sub "shop-${Stage}-${AWS::Region}-${AWS::StackName}"
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      KeySchema: [{ AttributeName: pk, KeyType: HASH }]
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      CorsConfiguration:
        AllowOrigins: !Ref Origins
        MaxAge: 600
  Fn:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: fn } }
    Properties:
      Timeout: 3
      Environment:
        Variables:
          SECRET: !Sub "{{resolve:secretsmanager:${Stage}:SecretString:x}}"
          ARN: !GetAtt Table.Arn
          ROLE: !GetAtt Role.Arn
          LITERAL: !Sub "${!Stage}"
      Events:
        Get: { Type: HttpApi, Properties: { Path: "/items/{id}", Method: get } }
"#;

    #[test]
    fn resolves_intrinsics_and_globals() {
        let t = Template::parse(TEMPLATE).unwrap();
        let f = t.function("Fn").unwrap();
        assert_eq!(f.binary, "fn");
        assert_eq!((f.timeout_secs, f.memory_mb), (3, 256));
        assert_eq!(f.environment["TABLE_NAME"], "Table");
        assert_eq!(f.environment["ISSUER"], "shop-dev-us-east-1-shop-local");
        assert_eq!(f.environment["SECRET"], "{{resolve:secretsmanager:dev:SecretString:x}}");
        assert_eq!(f.environment["ARN"], "arn:aws:dynamodb:us-east-1:123456789012:table/Table");
        assert_eq!(f.environment["ROLE"], "Role.Arn");
        assert_eq!(f.environment["LITERAL"], "${Stage}");
        assert_eq!(f.routes, vec![Route { method: "GET".into(), path: "/items/{id}".into() }]);
        assert_eq!(t.tables[0].name, "Table");
        let cors = t.cors.unwrap();
        assert_eq!(cors.allow_origins, vec!["https://a.example", "https://b.example"]);
        assert_eq!(cors.max_age, Some(600));
    }

    /// The mock gateway signs webhooks for anyone who asks it: a production stage must refuse it.
    #[test]
    fn the_template_refuses_the_mock_gateway_on_a_production_stage() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
        let doc: Yaml = serde_yaml_ng::from_str(&text).unwrap();
        let rule = &doc["Rules"]["MockGatewayNotInProduction"];
        let condition = serde_yaml_ng::to_string(&rule["RuleCondition"]).unwrap();
        assert!(condition.contains("Stage") && condition.contains("prod"), "{condition}");
        let assertion = serde_yaml_ng::to_string(&rule["Assertions"][0]["Assert"]).unwrap();
        assert!(assertion.contains("DeployMockGateway") && assertion.contains("false"), "{assertion}");
    }

    #[test]
    fn parses_the_real_template() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        let t = Template::load(&path).unwrap();
        assert!(!t.functions.is_empty());
        assert!(t.functions.iter().all(|f| !f.binary.is_empty()));
    }

    const CONDITIONAL: &str = r#"
Parameters:
  Subnets: { Type: CommaDelimitedList, Default: "" }
  Cluster: { Type: String, Default: "" }
  Mock: { Type: String, Default: "false" }
Conditions:
  InVpc: !Not [!Equals [!Join ["", !Ref Subnets], ""]]
  HasCluster: !Not [!Equals [!Ref Cluster, ""]]
  Both: !And [!Condition HasCluster, { Condition: InVpc }]
  Either: !Or [!Condition HasCluster, !Equals [!Ref Mock, "true"]]
Resources:
  Policy:
    Type: AWS::IAM::ManagedPolicy
    Condition: HasCluster
    Properties:
      PolicyDocument:
        Statement:
          - Effect: Allow
            Action: kafka-cluster:WriteData
            Resource: !Join ["", [!Select [0, !Split [":cluster/", !Ref Cluster]], ":topic/", !Select [1, !Split [":cluster/", !Ref Cluster]], "/t"]]
  Fn:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: fn } }
    Properties:
      VpcConfig: !If [InVpc, { SubnetIds: !Ref Subnets }, !Ref AWS::NoValue]
      Policies:
        - !Ref Policy
        - !If [Both, { Statement: [] }, !Ref AWS::NoValue]
      Environment:
        Variables:
          EITHER: !If [Either, "yes", "no"]
          UNKNOWN: !If [Nowhere, "a", "b"]
          MAPPED: !FindInMap [M, K, V]
"#;

    #[test]
    fn the_stack_sees_the_defaults_and_every_resource() {
        let t = Template::parse(CONDITIONAL).unwrap();
        let f = t.function("Fn").unwrap();
        assert_eq!(f.environment["EITHER"], "no");
        // What cannot be resolved stays visible, in long form.
        assert_eq!(f.environment["UNKNOWN"], r#"{"Fn::If":["Nowhere","a","b"]}"#);
        assert_eq!(f.environment["MAPPED"], r#"{"Fn::FindInMap":["M","K","V"]}"#);
    }

    #[test]
    fn iam_resolves_with_the_local_overrides_and_leaves_out_what_a_false_condition_removes() {
        let doc: Yaml = serde_yaml_ng::from_str(CONDITIONAL).unwrap();
        let cluster = "arn:aws:kafka:us-east-1:123456789012:cluster/c/uuid-1";
        let r = Resolver::new(&doc, &[("Cluster", cluster), ("Mock", "true")]);
        assert_eq!(r.conditions["HasCluster"], Ok(true));
        assert_eq!(r.conditions["InVpc"], Ok(false));
        assert_eq!(r.conditions["Both"], Ok(false));
        assert_eq!(r.conditions["Either"], Ok(true));
        let policy = &doc["Resources"]["Policy"]["Properties"]["PolicyDocument"]["Statement"][0]["Resource"];
        assert_eq!(r.resolve(policy), json!("arn:aws:kafka:us-east-1:123456789012:topic/c/uuid-1/t"));
        let props = r.resolve(&doc["Resources"]["Fn"]["Properties"]);
        // AWS::NoValue removes the key, and the list item.
        assert_eq!(props.get("VpcConfig"), None);
        assert_eq!(props["Policies"], json!(["arn:aws:iam::123456789012:policy/Policy"]));

        // With the defaults, the policy's condition is false: IAM does not see it.
        let defaults = Resolved::parse(CONDITIONAL).unwrap();
        assert_eq!(defaults.absent.get("Policy").map(String::as_str), Some("HasCluster"));
        assert!(defaults.of_type("AWS::IAM::ManagedPolicy").next().is_none());
    }

    #[test]
    fn a_condition_that_cannot_be_evaluated_stops_the_iam_resolution() {
        let text = CONDITIONAL.replace("HasCluster: !Not", "HasCluster: !Contains [[a], a]\n  Was: !Not");
        let e = Resolved::parse(&text).err().unwrap().to_string();
        assert!(e.contains("HasCluster") && e.contains("Fn::Contains"), "{e}");
    }

    #[test]
    fn the_local_overrides_are_in_this_stacks_account_and_region() {
        let cluster = LOCAL_PARAMETER_OVERRIDES.iter().find(|(n, _)| *n == "MskClusterArn").unwrap().1;
        assert!(
            cluster.starts_with(&format!("arn:aws:kafka:{REGION}:{ACCOUNT_ID}:cluster/{STACK_NAME}/")),
            "{cluster}"
        );
    }

    #[test]
    fn the_real_template_resolves_for_iam_with_kafka_and_the_mock_gateway() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
        let r = Resolved::parse(&text).unwrap();
        for id in ["OutboxRelayFunction", "NotifierFunction", "MockGatewayFunction", "PublishEventsPolicy"] {
            assert!(r.resources.contains_key(id), "{id} is absent: {:?}", r.absent);
        }
        let relay = &r.resources["OutboxRelayFunction"].properties;
        assert_eq!(relay.get("VpcConfig"), None, "no subnets locally: not in a VPC");
        let publish = &r.resources["PublishEventsPolicy"].properties["PolicyDocument"]["Statement"][1]["Resource"];
        assert_eq!(
            publish,
            &json!(
                "arn:aws:kafka:us-east-1:123456789012:topic/shop-local/00000000-0000-0000-0000-000000000000-1/shop-events"
            )
        );
    }
}
