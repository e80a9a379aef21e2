use clap::Parser;
use thumbq_web::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())).init();
    let settings = Settings::parse();
    if let Some(thumbq_web::settings::Command::Migrate) = settings.command {
        return thumbq_web::migrate_store(&settings).await;
    }
    let app = Application::build(settings).await?;
    tracing::info!(address = %app.local_addr(), "Serving thumbq; open http://{}/ in a browser.", app.local_addr());
    if let Some(ops) = app.ops_addr() {
        tracing::info!(address = %ops, "Serving /healthz, /readyz and /metrics for operators on http://{ops}/ too.");
    }
    app.run_until_stopped(thumbq_web::shutdown_signal()).await?;
    Ok(())
}
