//! `RemoteEngine` against a tiny hand-written HTTP/1.1 server playing an
//! OpenAI-compatible provider. Everything here runs on plain threads: the
//! blocking reqwest client must not live on an async runtime.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use memsy_embedder::{EmbedError, Engine, RemoteEngine};
use serde_json::{json, Value};

const KEY: &str = "sk-test-very-secret";
const MODEL: &str = "text-embedding-test";
const DIM: usize = 8;

/// A scripted failure: status, extra headers, body.
type Canned = (u16, Vec<(&'static str, &'static str)>, String);

struct Provider {
    /// Vector size the provider answers with.
    dim: usize,
    /// Answers given before the normal ones, first first.
    script: Mutex<VecDeque<Canned>>,
    /// Number of inputs in each request received.
    batches: Mutex<Vec<usize>>,
}

/// Unnormalised and deterministic: depends on the text's length.
fn vector_for(text: &str, dim: usize) -> Vec<f32> {
    (0..dim).map(|j| ((text.len() + 3 * j) % 7) as f32 + 1.0).collect()
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn start(dim: usize, script: Vec<Canned>) -> (String, Arc<Provider>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let provider = Arc::new(Provider { dim, script: Mutex::new(script.into()), batches: Mutex::new(Vec::new()) });
    let p = provider.clone();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = serve(&p, stream);
        }
    });
    (base, provider)
}

/// Handles one request and closes the connection.
fn serve(p: &Provider, stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let (mut length, mut auth) = (0, String::new());
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap(),
            "authorization" => auth = value.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let inputs: Vec<String> = request["input"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t.as_str().map(String::from)).collect())
        .unwrap_or_default();
    p.batches.lock().unwrap().push(inputs.len());

    let scripted = p.script.lock().unwrap().pop_front();
    let (status, headers, body) = if let Some(canned) = scripted {
        canned
    } else if request_line.split_whitespace().take(2).collect::<Vec<_>>() != ["POST", "/v1/embeddings"] {
        (404, vec![], json!({"error": {"message": format!("no route {request_line}")}}).to_string())
    } else if auth != format!("Bearer {KEY}") {
        (401, vec![], json!({"error": {"message": "bad key"}}).to_string())
    } else if request["model"] != MODEL {
        (400, vec![], json!({"error": {"message": "unknown model"}}).to_string())
    } else {
        // Shuffled: odd indices first, then even ones backwards.
        let n = inputs.len();
        let order = (0..n).filter(|i| i % 2 == 1).chain((0..n).filter(|i| i % 2 == 0).rev());
        let data: Vec<Value> = order
            .map(|i| json!({"object": "embedding", "index": i, "embedding": vector_for(&inputs[i], p.dim)}))
            .collect();
        (200, vec![], json!({"object": "list", "data": data, "model": MODEL}).to_string())
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    )?;
    for (name, value) in headers {
        write!(out, "{name}: {value}\r\n")?;
    }
    write!(out, "\r\n{body}")?;
    out.flush()
}

fn engine(base: &str, dim: usize) -> RemoteEngine {
    RemoteEngine::new(base, MODEL, Some(KEY), dim, Duration::from_secs(5)).unwrap()
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| "x".repeat(i % 13 + 1) + &i.to_string()).collect()
}

fn assert_matches(got: &[Vec<f32>], texts: &[&str]) {
    assert_eq!(got.len(), texts.len());
    for (v, t) in got.iter().zip(texts) {
        let want = normalised(vector_for(t, DIM));
        assert!(v.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6), "{t:?}: {v:?} != {want:?}");
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}

fn error_text(r: Result<Vec<Vec<f32>>, EmbedError>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn results_come_back_in_caller_order_and_normalised() {
    let (base, provider) = start(DIM, vec![]);
    let e = engine(&base, DIM);
    assert_eq!(e.dimension(), DIM);
    assert_eq!(e.model_name(), MODEL);
    assert!(e.endpoint().ends_with("/v1/embeddings"));
    let owned = ["a", "bbbb", "cc", "ddddddd", "eee"];
    assert_matches(&e.embed(&owned).unwrap(), &owned);
    assert!(e.embed(&[]).unwrap().is_empty());
    assert_eq!(*provider.batches.lock().unwrap(), vec![5]);
    // A trailing slash on the base URL is fine too.
    let e = engine(&format!("{base}/"), DIM);
    assert_matches(&e.embed(&["z"]).unwrap(), &["z"]);
}

#[test]
fn key_is_not_in_debug_output() {
    let e = engine("http://127.0.0.1:9/v1", DIM);
    let debug = format!("{e:?}");
    assert!(!debug.contains(KEY), "{debug}");
    assert!(debug.contains("Sensitive"), "{debug}");
}

#[test]
fn too_many_requests_is_retried() {
    let (base, provider) = start(DIM, vec![(429, vec![("Retry-After", "0")], "slow down".into())]);
    let started = std::time::Instant::now();
    let got = engine(&base, DIM).embed(&["one", "three"]).unwrap();
    assert_matches(&got, &["one", "three"]);
    assert_eq!(provider.batches.lock().unwrap().len(), 2);
    assert!(started.elapsed() < Duration::from_millis(450), "Retry-After: 0 not honoured");
}

#[test]
fn server_error_without_retry_after_backs_off_then_succeeds() {
    let (base, provider) = start(DIM, vec![(503, vec![], String::new())]);
    let started = std::time::Instant::now();
    assert_matches(&engine(&base, DIM).embed(&["q"]).unwrap(), &["q"]);
    assert_eq!(provider.batches.lock().unwrap().len(), 2);
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[test]
fn persistent_server_error_fails_after_three_attempts() {
    let canned = || (500, vec![("Retry-After", "0")], json!({"error": {"message": "boom"}}).to_string());
    let (base, provider) = start(DIM, vec![canned(), canned(), canned(), canned()]);
    let err = error_text(engine(&base, DIM).embed(&["a"]));
    assert!(err.contains("500") && err.contains("boom"), "{err}");
    assert_eq!(provider.batches.lock().unwrap().len(), 3);
}

#[test]
fn unauthorized_fails_at_once_with_status_and_message() {
    let (base, provider) = start(DIM, vec![]);
    let e = RemoteEngine::new(&base, MODEL, Some("sk-wrong"), DIM, Duration::from_secs(5)).unwrap();
    let err = error_text(e.embed(&["a"]));
    assert!(err.contains("401") && err.contains("bad key"), "{err}");
    assert!(!err.contains("sk-wrong"), "{err}");
    assert_eq!(provider.batches.lock().unwrap().len(), 1);
    // No key at all: no Authorization header, same answer.
    let e = RemoteEngine::new(&base, MODEL, None, DIM, Duration::from_secs(5)).unwrap();
    assert!(error_text(e.embed(&["a"])).contains("401"));
}

#[test]
fn wrong_dimension_is_an_error() {
    let (base, _provider) = start(DIM / 2, vec![]);
    let err = error_text(engine(&base, DIM).embed(&["a", "b"]));
    assert!(err.contains("dimension 4, expected 8"), "{err}");
}

#[test]
fn wrong_count_is_an_error() {
    let body = json!({"data": [{"index": 0, "embedding": vec![1.0; DIM]}], "model": MODEL}).to_string();
    let (base, _provider) = start(DIM, vec![(200, vec![], body)]);
    let err = error_text(engine(&base, DIM).embed(&["a", "b"]));
    assert!(err.contains("sent 2 inputs but received 1"), "{err}");
}

#[test]
fn large_inputs_are_split_into_several_requests() {
    let (base, provider) = start(DIM, vec![]);
    let owned = texts(600);
    let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
    assert_matches(&engine(&base, DIM).embed(&refs).unwrap(), &refs);
    assert_eq!(*provider.batches.lock().unwrap(), vec![256, 256, 88]);
}

#[test]
fn bad_configuration_is_rejected() {
    assert!(RemoteEngine::new("not a url", MODEL, None, DIM, Duration::from_secs(1)).is_err());
    assert!(RemoteEngine::new("http://localhost/v1", MODEL, None, 0, Duration::from_secs(1)).is_err());
    assert!(RemoteEngine::new("http://localhost/v1", "", None, DIM, Duration::from_secs(1)).is_err());
}
