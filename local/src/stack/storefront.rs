//! The storefront's static files, served by the local API Gateway after its API routes.
//!
//! `storefront/` at the workspace root is a plain web page (HTML, CSS, JavaScript modules, no
//! build step) that calls only the public API. Serving it from the API's own origin means the
//! page needs no CORS configuration and no second port: open the API's base URL in a browser.
//! This is local-stack only; in AWS the same files would live on S3/CloudFront, pointed at the
//! `ApiUrl` output.
//!
//! The rules, so a request can never read outside the directory:
//!
//! * only `GET` and `HEAD` (anything else is the gateway's usual 404);
//! * `/` and any path ending in `/` serve that directory's `index.html`;
//! * the path is percent-decoded, then every segment must be a plain name: empty segments,
//!   dotfiles and dot-directories (any segment starting with `.`, so `.`, `..`, `.env`, `.git`),
//!   backslashes and NUL are refused, and the resolved file must still be inside the directory
//!   after symlinks are followed;
//! * the content type comes from the extension (a short table; unknown ones are
//!   `application/octet-stream`), with `x-content-type-options: nosniff` so the browser never
//!   guesses another; `cache-control: no-cache` so an edited file shows on reload;
//! * no CORS headers: the gateway adds them to API routes only, so only the page on this origin
//!   can read these files (see [`crate::emulators::api_gateway`]);
//! * anything not found is the gateway's `404 {"message":"Not Found"}`, as for unknown routes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Serves the files under `root` for every request it is given (use it as a fallback).
pub fn router(root: PathBuf) -> Router {
    Router::new().fallback(serve).with_state(Arc::new(root))
}

async fn serve(State(root): State<Arc<PathBuf>>, request: Request) -> Response {
    let head = request.method() == Method::HEAD;
    if !(head || request.method() == Method::GET) {
        return crate::emulators::api_gateway::not_found();
    }
    let Some(file) = resolve(&root, request.uri().path()) else {
        return crate::emulators::api_gateway::not_found();
    };
    let Ok(bytes) = tokio::fs::read(&file).await else {
        return crate::emulators::api_gateway::not_found();
    };
    let length = bytes.len();
    let body = if head { Body::empty() } else { Body::from(bytes) };
    let headers = [
        (header::CONTENT_TYPE, content_type(&file)),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    let mut response = (StatusCode::OK, headers, body).into_response();
    response.headers_mut().insert(header::CONTENT_LENGTH, length.into());
    response
}

/// The file a URL path names under `root`, if it is a plain path to an existing file inside it.
fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let decoded = percent_encoding::percent_decode_str(url_path).decode_utf8().ok()?;
    let relative = decoded.strip_prefix('/')?;
    let segments: Vec<&str> = relative.split('/').collect();
    let (last, dirs) = segments.split_last()?;
    // Not empty, no dotfile or dot-directory (`.`, `..`, `.git`, ...), no backslash or NUL.
    let plain = |s: &&str| !(s.is_empty() || s.starts_with('.') || s.contains(['\\', '\0']));
    if !dirs.iter().all(plain) {
        return None;
    }
    let mut path: PathBuf = root.join(dirs.iter().collect::<PathBuf>());
    match *last {
        "" => path.push("index.html"),
        name if plain(&name) => path.push(name),
        _ => return None,
    }
    // Symlinks inside the directory could point anywhere: compare the real paths.
    let real = path.canonicalize().ok()?;
    (real.starts_with(root.canonicalize().ok()?) && real.is_file()).then_some(real)
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_plain_paths_only() {
        let root = std::env::temp_dir().join(format!("storefront-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(root.join("js")).unwrap();
        std::fs::write(root.join("index.html"), "<p>hi</p>").unwrap();
        std::fs::write(root.join("js/app.js"), "").unwrap();
        std::fs::write(root.join(".env"), "SECRET=1").unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/config"), "").unwrap();
        std::fs::write(root.join("js/.app.js.swp"), "").unwrap();
        let real = root.canonicalize().unwrap();

        assert_eq!(resolve(&root, "/"), Some(real.join("index.html")));
        assert_eq!(resolve(&root, "/js/app.js"), Some(real.join("js/app.js")));
        assert_eq!(resolve(&root, "/js/%61pp.js"), Some(real.join("js/app.js")));
        for bad in [
            "/../Cargo.toml",
            "/js/../index.html",
            "/%2e%2e/x",
            "/js//app.js",
            "/./index.html",
            "/js",
            "/nope",
            "/.env",
            "/%2eenv",
            "/.git/config",
            "/.git/",
            "/js/.app.js.swp",
        ] {
            assert_eq!(resolve(&root, bad), None, "{bad}");
        }
        assert_eq!(content_type(Path::new("a.js")), "text/javascript; charset=utf-8");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test]
    async fn serves_files_with_nosniff_and_refuses_other_methods() {
        use tower::ServiceExt;
        let root = std::env::temp_dir().join(format!("storefront-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("index.html"), "<p>hi</p>").unwrap();
        std::fs::write(root.join(".env"), "SECRET=1").unwrap();
        let app = router(root.clone());
        let send = |method: &str, path: &str| {
            app.clone().oneshot(Request::builder().method(method).uri(path).body(Body::empty()).unwrap())
        };

        let r = send("GET", "/").await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        assert!(r.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        assert_eq!(&axum::body::to_bytes(r.into_body(), 1024).await.unwrap()[..], b"<p>hi</p>");

        let r = send("HEAD", "/index.html").await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_LENGTH], "9");
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");

        for (method, path) in [("GET", "/.env"), ("POST", "/"), ("PUT", "/index.html")] {
            let r = send(method, path).await.unwrap();
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{method} {path}");
            let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
            assert_eq!(&body[..], br#"{"message":"Not Found"}"#, "{method} {path}");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}
