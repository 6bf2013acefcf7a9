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
//!   logical id; the stack creates it in moto, see `crate::sqs`),
//! * `!Sub "...${X}..."` substitutes parameters, tables, `${T.Arn}` and the pseudo parameters
//!   `AWS::Region` (`us-east-1`) and `AWS::StackName` (`shop-local`),
//! * anything else (a `!GetAtt` of a role, `{{resolve:...}}` dynamic references, ...) is left as
//!   a plain string so it is visible, not silently dropped; `env.local.json` can override it.
//!
//! The result is ordinary JSON ([`serde_json::Value`]), which the rest of the crate reads.

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
        let resolver = Resolver::new(&doc);
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
    /// Parameter defaults; `CommaDelimitedList` ones are lists.
    parameters: BTreeMap<String, Json>,
    tables: Vec<String>,
    queues: Vec<String>,
}

impl Resolver {
    fn new(doc: &Yaml) -> Self {
        let mut parameters = BTreeMap::new();
        if let Some(params) = doc.get("Parameters").and_then(Yaml::as_mapping) {
            for (name, p) in params {
                let (Some(name), Some(default)) = (name.as_str(), p.get("Default")) else { continue };
                let default = yaml_scalar(default);
                let value = if p.get("Type").and_then(Yaml::as_str) == Some("CommaDelimitedList") {
                    Json::Array(default.split(',').map(|s| Json::String(s.trim().to_owned())).collect())
                } else {
                    Json::String(default)
                };
                parameters.insert(name.to_owned(), value);
            }
        }
        let of_type = |kind: &str| -> Vec<String> {
            doc.get("Resources")
                .and_then(Yaml::as_mapping)
                .into_iter()
                .flatten()
                .filter(|(_, r)| r.get("Type").and_then(Yaml::as_str) == Some(kind))
                .filter_map(|(id, _)| id.as_str().map(str::to_owned))
                .collect()
        };
        Self { parameters, tables: of_type("AWS::DynamoDB::Table"), queues: of_type("AWS::SQS::Queue") }
    }

    fn resolve(&self, v: &Yaml) -> Json {
        match v {
            Yaml::Null => Json::Null,
            Yaml::Bool(b) => Json::Bool(*b),
            Yaml::Number(n) => serde_json::to_value(n).unwrap_or(Json::Null),
            Yaml::String(s) => Json::String(s.clone()),
            Yaml::Sequence(items) => Json::Array(items.iter().map(|i| self.resolve(i)).collect()),
            Yaml::Mapping(m) => {
                // Long forms: {"Ref": X}, {"Fn::Sub": ...}, {"Fn::GetAtt": ...}.
                if m.len() == 1
                    && let Some((k, inner)) = m.iter().next()
                    && let Some(k) = k.as_str()
                    && let Some(name) = k.strip_prefix("Fn::").or((k == "Ref").then_some("Ref"))
                {
                    return self.intrinsic(name, inner);
                }
                let mut out = Map::new();
                for (k, v) in m {
                    out.insert(yaml_scalar(k), self.resolve(v));
                }
                Json::Object(out)
            }
            Yaml::Tagged(tagged) => {
                let tag = tagged.tag.to_string();
                self.intrinsic(tag.trim_start_matches('!'), &tagged.value)
            }
        }
    }

    fn intrinsic(&self, name: &str, arg: &Yaml) -> Json {
        match name {
            "Ref" => self.reference(&yaml_scalar(arg)),
            "Sub" => match arg {
                Yaml::Sequence(parts) if !parts.is_empty() => {
                    // [template, {Var: value}]: the explicit variables win.
                    let vars: BTreeMap<String, String> = match parts.get(1).map(|m| self.resolve(m)) {
                        Some(Json::Object(m)) => m.iter().map(|(k, v)| (k.clone(), scalar_string(v))).collect(),
                        _ => BTreeMap::new(),
                    };
                    Json::String(self.substitute(&yaml_scalar(&parts[0]), &vars))
                }
                other => Json::String(self.substitute(&yaml_scalar(other), &BTreeMap::new())),
            },
            "GetAtt" => {
                let target = match arg {
                    Yaml::Sequence(parts) => parts.iter().map(yaml_scalar).collect::<Vec<_>>().join("."),
                    other => yaml_scalar(other),
                };
                Json::String(self.attribute(&target).unwrap_or(target))
            }
            // Unknown intrinsics (`!If`, `!Join`, ...) are resolved structurally but kept visible.
            _ => self.resolve(arg),
        }
    }

    fn reference(&self, name: &str) -> Json {
        match name {
            "AWS::Region" => json!(REGION),
            "AWS::StackName" => json!(STACK_NAME),
            "AWS::AccountId" => json!(ACCOUNT_ID),
            "AWS::Partition" => json!("aws"),
            "AWS::URLSuffix" => json!("amazonaws.com"),
            _ => {
                if let Some(v) = self.parameters.get(name) {
                    v.clone()
                } else {
                    // Tables resolve to their local name (the logical id); unknown names stay as-is.
                    Json::String(name.to_owned())
                }
            }
        }
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
                out.push_str(&scalar_string(&self.reference(name)));
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
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
}
