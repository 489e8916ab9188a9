//! `pushgate migrate` reports its progress: what it applies, and how long each took.

use tokio::process::Command;

use crate::helpers::{fresh_database, Db};

async fn migrate(url: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .arg("migrate")
        .env("DATABASE_URL", url)
        .output()
        .await
        .expect("pushgate migrate runs");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn migrate_names_each_migration_and_its_time() {
    let (url, _dir) = fresh_database(Db::Sqlite).await;
    let (ok, report) = migrate(&url).await;
    assert!(ok, "{report}");
    assert!(report.contains("  0001 init") && report.contains("  0010 delivery stats"), "{report}");
    assert!(report.contains("  0010 done in ") && report.contains("migrations applied in"), "{report}");
    let (ok, again) = migrate(&url).await;
    assert!(ok && again.contains("the database is up to date"), "{again}");
}
