//! What tests of any crate need of the repository: a PostgreSQL database of a
//! test's own, created with it and dropped with it, and the record of an upload.
//!
//! Tests never touch another database: each makes its own and drops it, pass or
//! fail, so they can run in parallel and leave nothing behind on the server.

use sqlx::postgres::PgConnection;
use sqlx::{Connection, Executor};

/// The record the web server would make for an upload of `format` as `id`,
/// `width` × `height`, by an owner of the tests.
pub fn uploaded(id: thumbq_contract::ImageId, format: thumbq_contract::SourceFormat, width: u32, height: u32) -> crate::NewImage {
    crate::NewImage {
        id,
        owner: thumbq_contract::OwnerId::of_secret(b"a test's owner"),
        name: format!("upload.{}", format.code()),
        format,
        bytes: 0,
        // Bytes of its own: an owner's same bytes are one image.
        content_hash: id.to_string().replace('-', "").repeat(2),
        width,
        height,
        created_ms: id.uploaded_at_ms(),
        delete_token_hash: None,
        client: None,
    }
}

/// Holds the database's write lock until dropped: an upload's commit waits
/// behind it (SQLite up to its busy timeout), so that a test can stop a process
/// between storing an original and recording it.
pub struct WritesHeld(Held);

enum Held {
    Sqlite(sqlx::SqliteConnection),
    Postgres(PgConnection),
}

impl WritesHeld {
    pub async fn take(location: &crate::Location) -> Self {
        match location {
            crate::Location::Sqlite(path) => {
                let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let mut connection = sqlx::SqliteConnection::connect_with(&options).await.expect("the test's SQLite database opens");
                connection.execute("BEGIN IMMEDIATE").await.expect("SQLite's write lock");
                Self(Held::Sqlite(connection))
            }
            crate::Location::Postgres(url) => {
                let mut connection = PgConnection::connect(url).await.expect("the test's PostgreSQL database answers");
                connection.execute("BEGIN; LOCK TABLE images IN SHARE ROW EXCLUSIVE MODE").await.expect("a lock on images");
                Self(Held::Postgres(connection))
            }
        }
    }

    /// Lets the waiting writes go.
    pub async fn release(self) {
        match self.0 {
            Held::Sqlite(mut connection) => {
                connection.execute("ROLLBACK").await.expect("SQLite's write lock released");
            }
            Held::Postgres(mut connection) => {
                connection.execute("ROLLBACK").await.expect("the lock on images released");
            }
        }
    }
}

/// A repository in a SQLite database in `dir`, for tests.
#[cfg(test)]
pub(crate) async fn sqlite(dir: &tempfile::TempDir) -> crate::Repository {
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    crate::Repository::open(&crate::Location::Sqlite(dir.path().join("thumbq.db")), shutdown).await.unwrap()
}

/// A repository in the test's PostgreSQL `database`, for tests.
pub async fn postgres(database: &TestDatabase) -> crate::Repository {
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    crate::Repository::open(&crate::Location::Postgres(database.url().to_owned()), shutdown).await.expect("the test's PostgreSQL database opens")
}

/// The environment variable that points the tests at another PostgreSQL server.
pub const POSTGRES_URL_VAR: &str = "THUMBQ_TEST_POSTGRES_URL";

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The URL the tests create and drop their databases through.
///
/// It is `THUMBQ_TEST_POSTGRES_URL` when set, else the server `scripts/ensure-postgresql`
/// sets up: 127.0.0.1:5432, user postgres, no password.
pub fn postgres_admin_url() -> String {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => DEFAULT_ADMIN_URL.to_owned(),
    }
}

/// A database made for one test and dropped when this value is dropped.
///
/// The drop also happens when the test panics, because unwinding runs `Drop`.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    name: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates an empty database with a fresh random name on the test server.
    ///
    /// It panics when the server cannot be reached, saying how to start one, since a
    /// test without its database can only fail.
    pub async fn create() -> TestDatabase {
        let admin_url = postgres_admin_url();
        let mut admin = connect_admin(&admin_url).await;
        let name = format!("thumbq_test_{}", uuid::Uuid::new_v4().simple());
        // The name is ours (letters, digits, underscores), so quoting it is enough.
        let sql = format!(r#"CREATE DATABASE "{name}""#);
        if let Err(error) = admin.execute(sql.as_str()).await {
            panic!("Could not create the test database {name} through {admin_url}: {error}");
        }
        if let Err(error) = admin.close().await {
            eprintln!("Closing the admin connection to {admin_url} failed: {error}");
        }
        let url = with_database(&admin_url, &name);
        TestDatabase { url, name, admin_url }
    }

    /// The URL of this database: the admin URL's server and user, this database's name.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The name of this database on the server.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    /// Drops the database, closing whatever connections the test left open.
    ///
    /// `Drop` cannot await and may run on a tokio worker, where blocking on that runtime
    /// would panic; so a thread of its own, with a runtime of its own, does the work and
    /// this waits for it. Failures are printed, not raised: a panic here during a test's
    /// panic would abort the whole test binary.
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("Could not drop test database {name}: no tokio runtime: {error}");
                    return;
                }
            };
            runtime.block_on(async {
                let mut admin = match PgConnection::connect(&admin_url).await {
                    Ok(admin) => admin,
                    Err(error) => {
                        eprintln!("Could not drop test database {name}: connecting to {admin_url}: {error}");
                        return;
                    }
                };
                let sql = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
                if let Err(error) = admin.execute(sql.as_str()).await {
                    eprintln!("Could not drop test database {name} through {admin_url}: {error}");
                }
                let _ = admin.close().await;
            });
        })
        .join();
        if dropped.is_err() {
            eprintln!("Dropping test database {} panicked.", self.name);
        }
    }
}

async fn connect_admin(admin_url: &str) -> PgConnection {
    match PgConnection::connect(admin_url).await {
        Ok(admin) => admin,
        Err(error) => panic!(
            "Could not connect to PostgreSQL at {admin_url} ({POSTGRES_URL_VAR} or the default): \
             {error}. Run `scripts/test`, which installs and starts PostgreSQL, or run \
             `scripts/ensure-postgresql`."
        ),
    }
}

/// The URL with its database (the path after the last '/', before any '?') replaced.
///
/// Editing the string keeps the URL as given, so it prints as the tester wrote it;
/// query parameters such as `sslmode` are kept.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.find('?') {
        Some(at) => url.split_at(at),
        None => (url, ""),
    };
    // A URL without a path ("postgres://host:5432") gets one; the "//" of the scheme is
    // not a path.
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let server = match base[authority_start..].rfind('/') {
        Some(at) => &base[..authority_start + at],
        None => base,
    };
    format!("{server}/{database}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_database_replaces_only_the_database() {
        assert_eq!(with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"), "postgres://postgres@127.0.0.1:5432/t1");
        assert_eq!(
            with_database("postgres://u:p@db.example:5433/admin?sslmode=require&a=b/c", "t2"),
            "postgres://u:p@db.example:5433/t2?sslmode=require&a=b/c"
        );
        assert_eq!(with_database("postgres://host:5432", "t3"), "postgres://host:5432/t3");
        assert_eq!(with_database("postgres://host/", "t4"), "postgres://host/t4");
        assert_eq!(with_database("postgres://host?sslmode=disable", "t5"), "postgres://host/t5?sslmode=disable");
    }

    #[tokio::test]
    async fn a_postgresql_test_database_exists_until_it_is_dropped() {
        let database = TestDatabase::create().await;
        let name = database.name().to_owned();
        assert!(database.url().ends_with(&format!("/{name}")), "{}", database.url());

        let mut connection = PgConnection::connect(database.url()).await.unwrap();
        let one: i32 = sqlx::query_scalar("select 1").fetch_one(&mut connection).await.unwrap();
        assert_eq!(one, 1);
        // Left open on purpose: the drop must close it (WITH (FORCE)).
        drop(database);

        let mut admin = connect_admin(&postgres_admin_url()).await;
        let left: i64 = sqlx::query_scalar("select count(*) from pg_database where datname = $1").bind(&name).fetch_one(&mut admin).await.unwrap();
        assert_eq!(left, 0, "test database {name} is still there");
        drop(connection);
    }
}
