//! A PostgreSQL database of its own for each test, dropped afterwards.
//! Server: `$CAIRN_TEST_PG` or `postgres://postgres@127.0.0.1:5432`.

use sqlx::{Connection, Row};

pub fn server_url() -> String {
    std::env::var("CAIRN_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub struct TempDatabase {
    pub name: String,
    pub url: String,
}

impl TempDatabase {
    pub async fn create() -> TempDatabase {
        let name = format!("cairn_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&format!("{}/postgres", server_url()))
            .await
            .expect("connect to PostgreSQL at 127.0.0.1:5432 (set CAIRN_TEST_PG to override)");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
        let _ = conn.close().await;
        let url = format!("{}/{name}", server_url());
        TempDatabase { name, url }
    }

    /// Every row of every table in the public schema, as text.
    pub async fn dump_text(&self) -> String {
        let mut conn = sqlx::PgConnection::connect(&self.url).await.expect("connect");
        let tables: Vec<String> = sqlx::query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect();
        let mut out = String::new();
        for t in tables {
            let rows = sqlx::query(&format!("SELECT row_to_json(x)::text FROM {t} x")).fetch_all(&mut conn).await.unwrap();
            for r in rows {
                out.push_str(&r.get::<String, _>(0));
                out.push('\n');
            }
        }
        let _ = conn.close().await;
        out
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside or outside a runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&format!("{}/postgres", server_url())).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await;
                    let _ = conn.close().await;
                }
            })
        })
        .join();
    }
}
