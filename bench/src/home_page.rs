//! `--only home-page`: what a person's home page costs when thumbq shares
//! nothing but a bucket (s3s-fs), PostgreSQL and RabbitMQ: 24 done images of
//! one owner, `GET /` again and again, p50 and p99.
//!
//! Store requests per page are shown rather than counted: the same pages are
//! asked again with the bucket's server stopped. Every answer must still be a
//! 200 listing the 24 images; a page that asked the store anything would fail
//! or wait, so their number is 0 exactly when this holds.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use hyper::header;

use crate::http::Connection;
use crate::images::TestImage;
use crate::s3::S3Server;
use crate::servers::{Offloaded, Servers, Store};
use crate::table;

/// The images on the page: one page of a person's uploads.
const IMAGES: usize = 24;
/// How long the 24 jobs may take.
const DONE_WITHIN: Duration = Duration::from_secs(180);
const PAGE_WITHIN: Duration = Duration::from_secs(10);

pub struct Options<'a> {
    pub web: &'a std::path::Path,
    pub worker: &'a std::path::Path,
    pub amqp_url: &'a str,
    /// Pages asked with the bucket up, then as many with it down.
    pub requests: usize,
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(measure(options))
}

async fn measure(options: &Options<'_>) -> anyhow::Result<()> {
    let s3 = S3Server::start()?;
    let mut bucket = s3.fresh_store();
    let database = thumbq_repo::testing::TestDatabase::create().await;
    bucket.push(("THUMBQ_DATABASE_URL", database.url().to_owned()));
    let queue = format!("thumbq.bench.home.{}", thumbq_contract::ImageId::new());
    let setup = Offloaded {
        web: options.web,
        worker: options.worker,
        amqp_url: options.amqp_url,
        queue: &queue,
        workers: 2,
        worker_nice: 0,
        store: Store::Bucket(&bucket),
    };
    let mut servers = Servers::offloaded(&setup).await?;
    let mut connection = Connection::new(servers.address());

    let photo = Bytes::from(TestImage::photo_jpeg("2 MP JPEG", 1600, 1200).bytes);
    let (mut ids, mut owner) = (Vec::new(), None::<String>);
    for _ in 0..IMAGES {
        let answer = connection.send(connection.upload(&photo, owner.as_deref()), PAGE_WITHIN).await?;
        ensure!(answer.status.is_success(), "an upload answered {}", answer.status);
        let json: serde_json::Value = serde_json::from_slice(&answer.body)?;
        let image = &json["images"][0];
        ids.push(image["id"].as_str().context("an image id")?.to_owned());
        owner = owner.or_else(|| image["owner_key"].as_str().map(str::to_owned));
    }
    let owner = owner.context("the first upload gave an owner key")?;
    let started = Instant::now();
    for id in &ids {
        loop {
            servers.check_running()?;
            let answer = connection.send(connection.get(&format!("/api/images/{id}")), PAGE_WITHIN).await?;
            let state = serde_json::from_slice::<serde_json::Value>(&answer.body)?["state"].as_str().unwrap_or_default().to_owned();
            match state.as_str() {
                "done" => break,
                "pending" if started.elapsed() < DONE_WITHIN => tokio::time::sleep(Duration::from_millis(100)).await,
                other => bail!("image {id} is {other:?} after {:?}", started.elapsed()),
            }
        }
    }

    let home = |connection: &Connection| {
        let mut request = connection.get("/");
        request.headers_mut().insert(header::AUTHORIZATION, format!("Bearer {owner}").parse().expect("a key is a header value"));
        request
    };
    let mut rows = Vec::new();
    let mut bucket_up = Some(s3);
    for label in ["bucket up", "bucket's server stopped"] {
        // Warm: the first pages open the database's connections.
        for _ in 0..5 {
            connection.send(home(&connection), PAGE_WITHIN).await?;
        }
        let mut times = Vec::with_capacity(options.requests);
        for _ in 0..options.requests {
            let started = Instant::now();
            let answer = connection.send(home(&connection), PAGE_WITHIN).await?;
            times.push(started.elapsed());
            let page = String::from_utf8_lossy(&answer.body);
            ensure!(
                answer.status.is_success() && ids.iter().all(|id| page.contains(id.as_str())),
                "{label}: the home page answered {} without the 24 images",
                answer.status
            );
        }
        rows.push((label, times));
        // Stopped, not paused: a request to it now fails at once.
        drop(bucket_up.take());
    }
    servers.stop();

    table::heading("Home page on a bucket and PostgreSQL", "24 done images of one owner; the store is asked nothing.");
    table::header(&["bucket", "pages", "p50 (ms)", "p99 (ms)"]);
    for (label, times) in &rows {
        let p50 = crate::load::percentile(times, 0.50).unwrap_or_default();
        let p99 = crate::load::percentile(times, 0.99).unwrap_or_default();
        table::row(&[label.to_string(), times.len().to_string(), format!("{:.1}", table::ms(p50)), format!("{:.1}", table::ms(p99))]);
    }
    table::note(&format!(
        "The home page of one owner with {IMAGES} done images, `thumbq-web` on s3s-fs (over loopback) and PostgreSQL, asked one after another \
         on one connection. Requests to the store per page: 0, shown by the second row: with the bucket's server stopped every page was still \
         a 200 listing all {IMAGES} images. Reproduce: `scripts/bench --only home-page`."
    ));
    Ok(())
}
