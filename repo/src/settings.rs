//! Where the metadata database is: both binaries take the same flag.

use std::path::{Path, PathBuf};

/// `--database-url`: PostgreSQL for more than one machine; SQLite in the data directory without it.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DatabaseSettings {
    /// The metadata database: postgres://user@host:5432/thumbq for web servers and workers on
    /// several machines, or sqlite:///path/to/thumbq.db. Without it, thumbq.db in the data directory.
    #[arg(long = "database-url", env = "THUMBQ_DATABASE_URL", value_parser = Location::parse, hide_env_values = true)]
    pub database_url: Option<Location>,
}

impl DatabaseSettings {
    /// The database at `location`.
    pub fn at(location: Location) -> Self {
        Self { database_url: Some(location) }
    }

    /// Where the database is, with `data_dir` holding the default one.
    pub fn location(&self, data_dir: &Path) -> Location {
        self.database_url.clone().unwrap_or_else(|| Location::Sqlite(data_dir.join(Location::DEFAULT_FILE)))
    }
}

/// A database thumbq can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file, shared by the processes of one machine.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by its URL.
    Postgres(String),
}

impl Location {
    /// The default database's file name, in the data directory.
    pub const DEFAULT_FILE: &'static str = "thumbq.db";

    /// Reads `postgres://…`, `postgresql://…` or `sqlite://path`; anything else is refused, saying what is accepted.
    pub fn parse(url: &str) -> Result<Self, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            url.parse::<sqlx::postgres::PgConnectOptions>().map_err(|error| format!("{}: {error}", redacted(url)))?;
            return Ok(Self::Postgres(url.to_owned()));
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err("sqlite:// needs a file, e.g. sqlite:///var/lib/thumbq/thumbq.db".to_owned());
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        Err(format!("{}: a database URL starts with postgres:// or sqlite://", redacted(url)))
    }

    /// Where it is, for people and logs: never a password.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("SQLite at {}", path.display()),
            Self::Postgres(url) => format!("PostgreSQL at {}", redacted(url)),
        }
    }
}

/// `url` without the password between `:` and `@`.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, path) = rest.split_once('/').map_or((rest, None), |(authority, path)| (authority, Some(path)));
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => format!("{}@{host}", user.split(':').next().unwrap_or_default()),
        None => authority.to_owned(),
    };
    match path {
        Some(path) => format!("{scheme}://{authority}/{}", path.split('?').next().unwrap_or_default()),
        None => format!("{scheme}://{authority}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_backend_and_are_described_without_their_password() {
        let location = Location::parse("postgres://thumbq:s3cret@db.internal:5432/thumbq?sslmode=disable").unwrap();
        assert_eq!(location.describe(), "PostgreSQL at postgres://thumbq@db.internal:5432/thumbq");
        assert_eq!(Location::parse("sqlite:///srv/thumbq.db").unwrap(), Location::Sqlite("/srv/thumbq.db".into()));
        assert!(Location::parse("mysql://root@localhost/thumbq").unwrap_err().contains("postgres://"));
        assert!(Location::parse("sqlite://").is_err());
        let default = DatabaseSettings::default().location(Path::new("/data"));
        assert_eq!(default, Location::Sqlite("/data/thumbq.db".into()));
    }
}
