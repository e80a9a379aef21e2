//! Table 6 (`--only first-thumbnail`): how soon a person sees a thumbnail.
//! In headless Chromium, a 12 MP JPEG is chosen on the home page of a
//! `thumbq-web` on RabbitMQ with one idle worker; the time runs from the file
//! input's `change` to the first frame painted after the card shows the
//! server's small thumbnail. Each run's own timeline (the web server's and the
//! worker's steps, on the same clock as the browser) says where the time went.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use fantoccini::Locator;

use crate::browser::Browser;
use crate::http::Connection;
use crate::images::TestImage;
use crate::servers::{Offloaded, Servers, Store};
use crate::table;

/// What the table is run with.
pub struct Options<'a> {
    pub runs: usize,
    pub web: &'a Path,
    pub worker: &'a Path,
    pub amqp_url: &'a str,
}

/// Marks, in the page, the moment a file is chosen and the first frame
/// painted after the card's server thumbnail is in place.
const INSTRUMENT: &str = "
    window.thumbqTimes = {};
    document.querySelector('input[type=file]').addEventListener('change', () => { thumbqTimes.chosen = performance.now(); }, true);
    new MutationObserver(() => {
        if (thumbqTimes.shown || !document.querySelector('#uploads .card .thumb-small img[src*=\"/thumbs/\"]')) return;
        thumbqTimes.shown = performance.now();
        requestAnimationFrame(() => requestAnimationFrame(() => { thumbqTimes.painted = performance.now(); }));
    }).observe(document.body, { subtree: true, childList: true });
    return null;";

/// Milliseconds from the choice to each moment of one run.
struct Run {
    painted: f64,
    /// The upload's answer, from the browser's resource timing.
    answered: f64,
    /// Each step of the image's timeline, from the choice.
    steps: Vec<(String, f64)>,
}

pub fn run(options: &Options, image: &TestImage) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(crate::rabbitmq::check_reachable(options.amqp_url))?;
    let queue = crate::rabbitmq::unique_queue();
    let file = tempfile::Builder::new().suffix(".jpg").tempfile()?;
    let measured = runtime.block_on(measure(options, &queue, file.path(), &image.bytes));
    let deleted = runtime.block_on(crate::rabbitmq::delete_topology(options.amqp_url, &queue));
    let runs = measured?;
    deleted?;
    print_table(options, image, &runs);
    Ok(())
}

async fn measure(options: &Options<'_>, queue: &str, file: &Path, photo: &[u8]) -> anyhow::Result<Vec<Run>> {
    let setup = Offloaded { web: options.web, worker: options.worker, amqp_url: options.amqp_url, queue, workers: 1, worker_nice: 0, store: Store::DataDir };
    let mut servers = Servers::offloaded(&setup).await?;
    let browser = Browser::start().await?;
    let home = format!("http://{}/", servers.address());
    let mut runs = Vec::with_capacity(options.runs);
    // The first run warms the browser's caches and connections; it is not counted.
    for index in 0..=options.runs {
        browser.client.goto(&home).await?;
        browser.client.execute(INSTRUMENT, Vec::new()).await?;
        // A photo of its own each run: the same bytes again would be the image the
        // owner has (its thumbnails made long before), not a first thumbnail.
        std::fs::write(file, [photo, &(index as u64).to_le_bytes(), &thumbq_contract::timeline::now_ms().to_le_bytes()].concat())?;
        browser.client.find(Locator::Css("input[type=file]")).await?.send_keys(&file.display().to_string()).await?;
        let run = one_run(&browser, servers.address()).await.with_context(|| format!("run {index}"))?;
        servers.check_running()?;
        if index > 0 {
            runs.push(run);
        }
    }
    browser.close().await;
    servers.stop();
    Ok(runs)
}

async fn one_run(browser: &Browser, address: &str) -> anyhow::Result<Run> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let times = loop {
        let times = browser
            .client
            .execute(
                "const upload = performance.getEntriesByType('resource').filter(e => new URL(e.name).pathname.startsWith('/uploads'));
                 const answer = upload.length ? { responseEnd: Math.max(...upload.map(e => e.responseEnd)) } : undefined;
                 const card = document.querySelector('#uploads .card');
                 return { ...thumbqTimes, origin: performance.timeOrigin, answered: answer?.responseEnd, id: card?.dataset.image };",
                Vec::new(),
            )
            .await?;
        if times["painted"].is_number() {
            break times;
        }
        if std::time::Instant::now() > deadline {
            bail!("no thumbnail painted within a minute: {times}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let number = |name: &str| times[name].as_f64().with_context(|| format!("no {name} in {times}"));
    let (chosen, origin) = (number("chosen")?, number("origin")?);
    let id = times["id"].as_str().context("the card names its image")?;
    // The whole timeline, once the job has made every size and format; and the
    // worker idle again, so that the next run's job does not wait behind this one's WebPs.
    // An image is `done` once its three JPEGs are written (a page shows it whole);
    // the job ends after the WebPs (the worker here makes them: the default), and
    // only then does the API name them.
    let status = loop {
        let status = get_json(address, &format!("/api/images/{id}")).await?;
        match status["state"].as_str() {
            Some("done") if status["webp"].is_object() => break status,
            Some("done" | "pending") if std::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(10)).await,
            _ => bail!("image {id} did not finish within a minute: {status}"),
        }
    };
    let steps = status["timeline"]
        .as_array()
        .context("a timeline")?
        .iter()
        .filter_map(|step| Some((step["step"].as_str()?.to_owned(), step["at"].as_f64()? - origin - chosen)))
        .collect();
    Ok(Run { painted: number("painted")? - chosen, answered: number("answered")? - chosen, steps })
}

/// A GET over the bench's own HTTP client, read as JSON.
async fn get_json(address: &str, path: &str) -> anyhow::Result<serde_json::Value> {
    let mut connection = Connection::new(address);
    let answer = connection.send(connection.get(path), Duration::from_secs(10)).await?;
    anyhow::ensure!(answer.status.is_success(), "{path} answered {}", answer.status);
    Ok(serde_json::from_slice(&answer.body)?)
}

fn print_table(options: &Options, image: &TestImage, runs: &[Run]) {
    table::heading(
        "First thumbnail",
        &format!(
            "In headless Chromium, a {} of {:.1} MB chosen on the home page of `thumbq-web` on RabbitMQ with one idle worker (each run waits for the last job to end, its WebPs written), {} times (after one run not counted): milliseconds from the file input's change, on one clock, to each step of the image's timeline, the upload's answer, and the first frame painted with the server's small thumbnail. Browser, servers and RabbitMQ share this machine's cores.",
            image.name,
            image.bytes.len() as f64 / 1e6,
            options.runs,
        ),
    );
    table::header(&["moment", "median (ms)", "fastest (ms)", "slowest (ms)"]);
    let mut moments: Vec<(String, Vec<f64>)> = Vec::new();
    for run in runs {
        for (step, at) in &run.steps {
            match moments.iter_mut().find(|(name, _)| name == step) {
                Some((_, values)) => values.push(*at),
                None => moments.push((step.clone(), vec![*at])),
            }
        }
    }
    moments.push(("the upload answered (browser)".into(), runs.iter().map(|run| run.answered).collect()));
    moments.push(("small thumbnail painted (browser)".into(), runs.iter().map(|run| run.painted).collect()));
    moments.sort_by(|a, b| median(&a.1).total_cmp(&median(&b.1)));
    for (moment, values) in &moments {
        let fastest = values.iter().copied().fold(f64::INFINITY, f64::min);
        let slowest = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        table::row(&[moment.clone(), format!("{:.0}", median(values)), format!("{fastest:.0}"), format!("{slowest:.0}")]);
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}
