//! The OpenAPI 3.1 document of the gateway, built from the route table
//! (`routes.rs`) and the types' `ToSchema` derives. Served at
//! `/openapi.json`, printed by `memsy openapi` and checked in as
//! docs/openapi.json (tests/e2e/test_openapi.py keeps the three equal).

use std::collections::BTreeMap;

use axum::http::Method;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder, PathItem, PathsBuilder,
    Ref, RefOr, Required, ResponseBuilder,
};

use crate::routes::{self, Access, Content, Route, SchemaRef};
use crate::schemas::ErrorResponse;

const SECURITY: &str = "api_key";

/// The tags, in the order the browsable page shows them.
pub const TAGS: [(&str, &str); 13] = [
    ("events", "Ingest events and follow them through the pipeline"),
    ("search", "Search the org's memories"),
    ("memories", "Browse, pin, archive and delete the org's memories"),
    ("actors", "The actors the org's memories are about"),
    ("orgs", "The org's record and its promotion prompt"),
    ("roles", "Role records and their promotion prompts"),
    ("teams", "Team records and their promotion prompts"),
    ("health", "Connectivity and dependency checks for API clients"),
    ("control", "Who is calling"),
    ("keys", "API keys"),
    ("usage", "Usage against the plan"),
    ("not self-hosted", "Routes the SDK has that a self-hosted memsy answers with 403"),
    ("operations", "For operators and readers: no API key"),
];

const DESCRIPTION: &str = "memsy's HTTP API, the one the memsy Python SDK (0.3.5) calls.\n\n\
The core API is served under `/v1` (the SDK's base URL) and also at the root (`/ingest` is `/v1/ingest`); \
the control plane is under `/api`. Every route of both needs `Authorization: Bearer <api key>`; \
a route's description names the scope it needs (`admin` includes `read` and `write`).\n\n\
Every refusal has the shape `{\"detail\": {\"error\": \"<code>\", \"message\": \"<text>\", …}}`; \
bad input is a 4xx naming the field. Answers carry `X-Plan`, `X-Usage-*` and `X-RateLimit-*` headers; \
a 429 or 503 carries `Retry-After`.";

/// What the errors a route can give mean, by status.
fn error_description(status: u16) -> &'static str {
    match status {
        400 => "`bad_request` or `org_id_not_allowed`: a malformed request",
        401 => "`invalid_api_key`: no key, or not a live one",
        403 => "`insufficient_scope`: the key lacks the route's scope",
        404 => "`not_found`: no such record in the key's org",
        413 => "`payload_too_large`",
        422 => "`validation_error`: `field` names what is wrong",
        429 => "`rate_limited` or `usage_limit_exceeded`; see `Retry-After`",
        503 => "`service_unavailable`: `component` names the dependency that is down; retry later",
        _ => "An error",
    }
}

/// The errors every route of this kind can give, besides its own.
fn common_errors(route: &Route, path: &str) -> Vec<u16> {
    let mut codes = vec![];
    if route.doc.access != Access::Open {
        codes.extend([401, 429, 503]);
    }
    if matches!(route.doc.access, Access::Scope(_)) {
        codes.push(403);
    }
    if route.doc.body.is_some() {
        codes.extend([400, 413, 422]);
    }
    if path.contains('{') {
        codes.push(404);
    }
    if !route.doc.query.is_empty() || path.contains('{') {
        codes.extend([400, 422]);
    }
    codes
}

fn http_method(m: &Method) -> HttpMethod {
    match *m {
        Method::GET => HttpMethod::Get,
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::PATCH => HttpMethod::Patch,
        Method::DELETE => HttpMethod::Delete,
        Method::HEAD => HttpMethod::Head,
        Method::OPTIONS => HttpMethod::Options,
        _ => HttpMethod::Trace,
    }
}

fn reference(s: &SchemaRef) -> RefOr<utoipa::openapi::schema::Schema> {
    Ref::from_schema_name(s.name.clone()).into()
}

fn json(schema: RefOr<utoipa::openapi::schema::Schema>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

/// `post_v1_ingest`, `get_v1_orgs__org_id_`: unique, since method and path are.
fn operation_id(method: &Method, path: &str) -> String {
    let tail: String = path.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("{}{tail}", method.as_str().to_lowercase())
}

fn operation(route: &Route, path: &str) -> utoipa::openapi::path::Operation {
    let doc = &route.doc;
    let access = match doc.access {
        Access::Open => String::new(),
        Access::AnyKey => "Any valid API key.".to_string(),
        Access::Scope(s) => format!("Needs the `{s}` scope."),
    };
    let description = [doc.description, &access].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ");
    let mut op = OperationBuilder::new()
        .tag(doc.tag)
        .summary(Some(doc.summary))
        .description((!description.is_empty()).then_some(description))
        .operation_id(Some(operation_id(&route.method, path)));
    for name in path_params(path) {
        op = op.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    for (name, ty, description) in doc.query {
        let ty = match *ty {
            "integer" => Type::Integer,
            "boolean" => Type::Boolean,
            _ => Type::String,
        };
        op = op.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(*description))
                .schema(Some(ObjectBuilder::new().schema_type(ty))),
        );
    }
    if let Some((schema, required)) = &doc.body {
        let body = RequestBodyBuilder::new()
            .content("application/json", json(reference(schema)))
            .required(Some(if *required { Required::True } else { Required::False }))
            .build();
        op = op.request_body(Some(body));
    }
    let mut responses = BTreeMap::new();
    for reply in &doc.replies {
        let r = ResponseBuilder::new().description(reply.description);
        let r = match &reply.content {
            Content::Json(s) => r.content("application/json", json(reference(s))),
            Content::JsonList(s) => r.content("application/json", json(ArrayBuilder::new().items(reference(s)).into())),
            Content::Other(media) => r.content(*media, json(ObjectBuilder::new().schema_type(Type::String).into())),
            Content::Empty => r,
        };
        responses.insert(reply.status, r.build());
    }
    let error = crate::routes::schema::<ErrorResponse>();
    for status in common_errors(route, path) {
        responses.entry(status).or_insert_with(|| {
            ResponseBuilder::new()
                .description(error_description(status))
                .content("application/json", json(reference(&error)))
                .build()
        });
    }
    for (status, r) in responses {
        op = op.response(status.to_string(), r);
    }
    if doc.access != Access::Open {
        op = op.security(SecurityRequirement::new(SECURITY, Vec::<String>::new()));
    }
    op.build()
}

/// `{org_id}` of `/v1/orgs/{org_id}`.
pub fn path_params(path: &str) -> Vec<&str> {
    path.split('/').filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}')).collect()
}

/// The document.
pub fn document() -> OpenApi {
    let table = routes::table();
    let mut paths = PathsBuilder::new();
    let mut schemas = vec![];
    (routes::schema::<ErrorResponse>().collect)(&mut schemas);
    for route in &table {
        for path in route.documented_paths() {
            paths = paths.path(path.clone(), PathItem::new(http_method(&route.method), operation(route, &path)));
        }
        if let Some((s, _)) = &route.doc.body {
            (s.collect)(&mut schemas);
        }
        for reply in &route.doc.replies {
            if let Content::Json(s) | Content::JsonList(s) = &reply.content {
                (s.collect)(&mut schemas);
            }
        }
    }
    // Collected once per use: keep one of each, sorted by name.
    let schemas: BTreeMap<String, RefOr<utoipa::openapi::schema::Schema>> = schemas.into_iter().collect();
    let bearer = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some("An API key (`msy_…`): `memsy keys create`, or POST /api/keys"))
        .build();
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(SECURITY, SecurityScheme::Http(bearer))
        .build();
    let used: Vec<&str> = table.iter().map(|r| r.doc.tag).collect();
    let tags = TAGS
        .iter()
        .filter(|(name, _)| used.contains(name))
        .map(|(name, description)| TagBuilder::new().name(*name).description(Some(*description)).build());
    let license = LicenseBuilder::new().name("Apache-2.0").identifier(Some("Apache-2.0")).build();
    let info = InfoBuilder::new()
        .title("memsy")
        .version(crate::health::VERSION)
        .description(Some(DESCRIPTION))
        .license(Some(license))
        .build();
    OpenApiBuilder::new().info(info).paths(paths).components(Some(components)).tags(Some(tags)).build()
}

/// The document as served and checked in: pretty JSON and a final newline.
pub fn to_json() -> String {
    let mut s = document().to_pretty_json().expect("the document serialises");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;

    fn doc() -> Value {
        serde_json::from_str(&to_json()).unwrap()
    }

    #[test]
    fn every_served_route_is_documented_with_its_schemas() {
        let d = doc();
        assert_eq!(d["openapi"], "3.1.0");
        for route in routes::table() {
            let method = route.method.as_str().to_lowercase();
            let paths = route.documented_paths();
            assert!(
                !paths.is_empty() || (route.is_catch_all() && route.doc.tag.is_empty()),
                "{} {} documents no path",
                route.method,
                route.path
            );
            for path in paths {
                let op = &d["paths"][&path][&method];
                assert!(op.is_object(), "{method} {path} is not in the document");
                assert!(!route.doc.tag.is_empty() && !route.doc.summary.is_empty(), "{method} {path}");
                assert!(TAGS.iter().any(|(t, _)| *t == route.doc.tag), "{method} {path}: unknown tag");
                let responses = op["responses"].as_object().unwrap();
                assert!(!responses.is_empty(), "{method} {path}");
                if route.doc.body.is_some() {
                    assert!(op["requestBody"]["content"]["application/json"]["schema"]["$ref"].is_string());
                }
                // Every path parameter is declared, and only those.
                let declared: BTreeSet<&str> = op["parameters"]
                    .as_array()
                    .map(|ps| ps.iter().filter(|p| p["in"] == "path").map(|p| p["name"].as_str().unwrap()).collect())
                    .unwrap_or_default();
                assert_eq!(declared, path_params(&path).into_iter().collect(), "{method} {path}");
            }
        }
    }

    #[test]
    fn every_reference_resolves() {
        let d = doc();
        let schemas = d["components"]["schemas"].as_object().unwrap();
        let text = d.to_string();
        let mut refs = 0;
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            assert!(schemas.contains_key(name), "unresolved $ref {name}");
            refs += 1;
        }
        assert!(refs > 50, "{refs}");
        for name in ["ErrorResponse", "IngestRequest", "IngestResponse", "StatusResponse", "HealthResponse"] {
            assert!(schemas.contains_key(name), "{name}");
        }
    }

    #[test]
    fn schemas_follow_the_code() {
        let d = doc();
        let s = &d["components"]["schemas"];
        let kinds = &s["EventPayload"]["properties"]["kind"]["enum"];
        assert_eq!(kinds, &serde_json::json!(memsy_core::model::EVENT_KINDS));
        let status = &s["StatusResponse"]["properties"];
        assert!(status["completedIds"].is_object() && status["failedIds"].is_object(), "{status}");
        assert_eq!(s["IngestResponse"]["required"], serde_json::json!(["event_ids"]));
    }

    #[test]
    fn the_document_is_stable() {
        assert_eq!(to_json(), to_json());
        assert!(to_json().ends_with("}\n"));
    }
}
