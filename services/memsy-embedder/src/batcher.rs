//! The dynamic batcher in front of an engine. On a CPU an engine is fastest
//! on batches, and it can only do one batch at a time, so every caller —
//! the embedding stage and query embedding alike — hands its texts to one
//! worker thread that owns the engine. The worker collects up to
//! `max_batch` texts or waits `max_wait` for more, whichever comes first,
//! and always serves queries first: a search waits for at most the one
//! engine call in progress, never behind a backlog of stage work, because
//! bulk requests are cut into pieces of at most `max_batch` texts.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};
use memsy_core::metrics as mx;
use tokio::sync::oneshot;
use tracing::warn;

use crate::{EmbedError, Engine};

/// Who is waiting: a person (a search) or the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Query,
    Bulk,
}

type Reply = oneshot::Sender<Result<Vec<Vec<f32>>, EmbedError>>;

struct Request {
    texts: Vec<String>,
    reply: Reply,
}

/// A request being served, possibly over several engine calls.
struct Job {
    texts: Vec<String>,
    /// Texts handed to the engine so far.
    taken: usize,
    vectors: Vec<Vec<f32>>,
    reply: Reply,
}

impl From<Request> for Job {
    fn from(r: Request) -> Self {
        Job { vectors: Vec::with_capacity(r.texts.len()), texts: r.texts, taken: 0, reply: r.reply }
    }
}

#[derive(Clone)]
pub struct Batcher {
    query: Sender<Request>,
    bulk: Sender<Request>,
}

impl Batcher {
    /// Starts the worker thread; it ends when the last handle is dropped.
    pub fn spawn(engine: Arc<dyn Engine>, max_batch: usize, max_wait: Duration) -> Self {
        let (query, query_rx) = crossbeam_channel::unbounded();
        let (bulk, bulk_rx) = crossbeam_channel::unbounded();
        let max_batch = max_batch.max(1);
        std::thread::Builder::new()
            .name(crate::MODEL_THREAD_NAME.into())
            .spawn(move || {
                Worker { engine, query_rx, bulk_rx, max_batch, max_wait, queries: Vec::new(), bulk: VecDeque::new() }
                    .run()
            })
            .expect("spawn the embedding worker");
        Self { query, bulk }
    }

    /// One normalised vector per text, in order.
    pub async fn embed(&self, texts: Vec<String>, priority: Priority) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        let queue = if priority == Priority::Query { &self.query } else { &self.bulk };
        // Waiting until the worker hands them to the engine (`run_batch`).
        metrics::gauge!(mx::EMBEDDER_QUEUE_DEPTH).increment(texts.len() as f64);
        queue.send(Request { texts, reply }).map_err(|_| EmbedError::Compute("embedding worker has stopped".into()))?;
        rx.await.map_err(|_| EmbedError::Compute("embedding worker dropped the request".into()))?
    }
}

struct Worker {
    engine: Arc<dyn Engine>,
    query_rx: Receiver<Request>,
    bulk_rx: Receiver<Request>,
    max_batch: usize,
    max_wait: Duration,
    queries: Vec<Job>,
    bulk: VecDeque<Job>,
}

impl Worker {
    fn queued(&self) -> usize {
        self.queries.iter().map(|j| j.texts.len()).sum::<usize>()
            + self.bulk.iter().map(|j| j.texts.len() - j.taken).sum::<usize>()
    }

    /// Takes everything already waiting; false once every handle is gone.
    fn drain(&mut self) -> bool {
        let mut open = true;
        loop {
            match self.query_rx.try_recv() {
                Ok(r) => self.queries.push(r.into()),
                Err(e) => {
                    open &= !e.is_disconnected();
                    break;
                }
            }
        }
        loop {
            match self.bulk_rx.try_recv() {
                Ok(r) => self.bulk.push_back(r.into()),
                Err(e) => {
                    open &= !e.is_disconnected();
                    break;
                }
            }
        }
        open
    }

    /// Waits up to `timeout` for one more request; false once every handle is gone.
    fn wait(&mut self, timeout: Duration) -> bool {
        select! {
            recv(self.query_rx) -> r => match r { Ok(r) => { self.queries.push(r.into()); true } Err(_) => false },
            recv(self.bulk_rx) -> r => match r { Ok(r) => { self.bulk.push_back(r.into()); true } Err(_) => false },
            default(timeout) => true,
        }
    }

    fn run(mut self) {
        loop {
            let mut open = self.drain();
            if self.queries.is_empty() && self.bulk.is_empty() {
                if !open {
                    return;
                }
                // Idle: block until something arrives.
                if self.block().is_none() {
                    return;
                }
            }
            // Gather more for a moment, unless there is a full batch already.
            let deadline = Instant::now() + self.max_wait;
            while open && self.queued() < self.max_batch {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                open = self.wait(deadline - now);
                open &= self.drain();
            }
            self.run_batch();
        }
    }

    fn block(&mut self) -> Option<()> {
        select! {
            recv(self.query_rx) -> r => r.ok().map(|r| self.queries.push(r.into())),
            recv(self.bulk_rx) -> r => r.ok().map(|r| self.bulk.push_back(r.into())),
        }
    }

    /// One engine call: every waiting query, then bulk texts up to the batch size.
    fn run_batch(&mut self) {
        let queries = std::mem::take(&mut self.queries);
        let mut texts: Vec<&str> = queries.iter().flat_map(|j| j.texts.iter().map(String::as_str)).collect();
        // (index in self.bulk, how many texts taken from it)
        let mut pieces: Vec<(usize, usize)> = Vec::new();
        for (i, job) in self.bulk.iter().enumerate() {
            let room = self.max_batch.saturating_sub(texts.len());
            if room == 0 {
                break;
            }
            let n = room.min(job.texts.len() - job.taken);
            texts.extend(job.texts[job.taken..job.taken + n].iter().map(String::as_str));
            pieces.push((i, n));
        }
        metrics::gauge!(mx::EMBEDDER_QUEUE_DEPTH).decrement(texts.len() as f64);
        let result = self.engine.embed(&texts);
        if result.is_ok() {
            metrics::counter!(mx::EMBEDDER_TEXTS).increment(texts.len() as u64);
        }
        drop(texts);
        match result {
            Ok(vectors)
                if vectors.len()
                    == queries.iter().map(|j| j.texts.len()).sum::<usize>()
                        + pieces.iter().map(|p| p.1).sum::<usize>() =>
            {
                let mut it = vectors.into_iter();
                for job in queries {
                    let v: Vec<Vec<f32>> = it.by_ref().take(job.texts.len()).collect();
                    let _ = job.reply.send(Ok(v));
                }
                for &(i, n) in &pieces {
                    let job = &mut self.bulk[i];
                    job.vectors.extend(it.by_ref().take(n));
                    job.taken += n;
                }
                // Finished jobs are a prefix of the queue: pieces are taken in order.
                while self.bulk.front().is_some_and(|j| j.vectors.len() == j.texts.len()) {
                    let job = self.bulk.pop_front().expect("front exists");
                    let _ = job.reply.send(Ok(job.vectors));
                }
            }
            other => {
                let reason = match other {
                    Err(e) => e.to_string(),
                    Ok(v) => format!("engine returned {} vectors for the batch", v.len()),
                };
                warn!(error = %reason, "embedding batch failed");
                for job in queries {
                    let _ = job.reply.send(Err(EmbedError::Compute(reason.clone())));
                }
                // Every bulk job that had texts in this batch fails as a whole.
                for _ in 0..pieces.len() {
                    if let Some(job) = self.bulk.pop_front() {
                        let _ = job.reply.send(Err(EmbedError::Compute(reason.clone())));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records the size of every engine call; vector = [text length].
    struct Recorder {
        calls: Mutex<Vec<Vec<String>>>,
        delay: Duration,
    }

    impl Engine for Recorder {
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
            std::thread::sleep(self.delay);
            self.calls.lock().unwrap().push(texts.iter().map(|s| s.to_string()).collect());
            if texts.contains(&"boom") {
                return Err(EmbedError::Compute("boom".into()));
            }
            Ok(texts.iter().map(|t| vec![t.len() as f32]).collect())
        }
        fn dimension(&self) -> usize {
            1
        }
        fn model_name(&self) -> &str {
            "recorder"
        }
    }

    fn texts(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i:04}")).collect()
    }

    #[tokio::test]
    async fn results_keep_order_and_big_requests_are_cut() {
        let engine = Arc::new(Recorder { calls: Mutex::default(), delay: Duration::ZERO });
        let b = Batcher::spawn(engine.clone(), 8, Duration::from_millis(1));
        let t = texts("t", 20);
        let v = b.embed(t.clone(), Priority::Bulk).await.unwrap();
        assert_eq!(v.len(), 20);
        assert!(v.iter().zip(&t).all(|(v, t)| v[0] == t.len() as f32));
        assert!(engine.calls.lock().unwrap().iter().all(|c| c.len() <= 8));
    }

    #[tokio::test]
    async fn concurrent_small_requests_share_a_call() {
        let engine = Arc::new(Recorder { calls: Mutex::default(), delay: Duration::ZERO });
        let b = Batcher::spawn(engine.clone(), 64, Duration::from_millis(100));
        let futs: Vec<_> = (0..10).map(|i| b.embed(vec![format!("q{i}")], Priority::Query)).collect();
        let out = futures::future::join_all(futs).await;
        assert!(out.iter().all(|r| r.as_ref().unwrap().len() == 1));
        assert!(engine.calls.lock().unwrap().len() < 10, "requests were batched");
    }

    #[tokio::test]
    async fn a_query_overtakes_a_backlog() {
        // A backlog of 25 engine calls of 50 ms each.
        let engine = Arc::new(Recorder { calls: Mutex::default(), delay: Duration::from_millis(50) });
        let b = Batcher::spawn(engine.clone(), 4, Duration::from_millis(1));
        let bulk = tokio::spawn({
            let b = b.clone();
            async move { b.embed(texts("b", 100), Priority::Bulk).await }
        });
        tokio::time::sleep(Duration::from_millis(60)).await;
        b.embed(vec!["query".into()], Priority::Query).await.unwrap();
        let calls_at_query = engine.calls.lock().unwrap().len();
        assert!(calls_at_query < 25, "query waited for the whole backlog ({calls_at_query} calls)");
        assert_eq!(bulk.await.unwrap().unwrap().len(), 100);
    }

    #[tokio::test]
    async fn an_engine_error_reaches_every_caller_in_the_batch() {
        let engine = Arc::new(Recorder { calls: Mutex::default(), delay: Duration::ZERO });
        let b = Batcher::spawn(engine.clone(), 64, Duration::from_millis(20));
        let engine_calls = engine.clone();
        let (x, y) =
            tokio::join!(b.embed(vec!["boom".into()], Priority::Bulk), b.embed(vec!["fine".into()], Priority::Query));
        assert!(x.is_err());
        // "fine" fails exactly when it shared the failing engine call.
        let shared = engine_calls
            .calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.contains(&"boom".to_string()) && c.contains(&"fine".to_string()));
        assert_eq!(y.is_err(), shared);
        // The worker goes on.
        assert!(b.embed(vec!["ok".into()], Priority::Query).await.is_ok());
    }
}
