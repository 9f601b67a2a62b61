//! Download counts: counted in memory per (package, version, day) and added to
//! the database in batches, so a tarball download never waits on a write.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{Duration, NaiveDate, Utc};

use crate::store::Store;

use super::{Error, Result};

#[derive(Default)]
pub struct DownloadCounter {
    pending: Mutex<HashMap<(String, String, String), i64>>,
}

impl DownloadCounter {
    pub fn count(&self, package: &str, version: &str) {
        let day = Utc::now().format("%Y-%m-%d").to_string();
        *self.pending.lock().expect("download lock").entry((package.to_string(), version.to_string(), day)).or_insert(0) += 1;
    }

    pub async fn flush(&self, store: &dyn Store) -> Result<usize> {
        let batch: Vec<(String, String, String, i64)> =
            std::mem::take(&mut *self.pending.lock().expect("download lock")).into_iter().map(|((p, v, d), n)| (p, v, d, n)).collect();
        if batch.is_empty() {
            return Ok(0);
        }
        if let Err(e) = store.add_downloads(&batch).await {
            let mut map = self.pending.lock().expect("download lock");
            for (p, v, d, n) in batch {
                *map.entry((p, v, d)).or_insert(0) += n;
            }
            return Err(e.into());
        }
        Ok(batch.len())
    }
}

/// npm's period syntax: `last-day` (today, UTC), `last-week` (7 days up to
/// today), `last-month` (30 days), `last-year` (365 days), `YYYY-MM-DD` or
/// `YYYY-MM-DD:YYYY-MM-DD`. At most 18 months.
pub fn parse_period(period: &str) -> Result<(NaiveDate, NaiveDate)> {
    let today = Utc::now().date_naive();
    let back = |days: i64| (today - Duration::days(days - 1), today);
    let (start, end) = match period {
        "last-day" => back(1),
        "last-week" => back(7),
        "last-month" => back(30),
        "last-year" => back(365),
        other => {
            let parse =
                |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| Error::BadRequest(format!("invalid date range {other:?}")));
            match other.split_once(':') {
                Some((a, b)) => (parse(a)?, parse(b)?),
                None => {
                    let d = parse(other)?;
                    (d, d)
                }
            }
        }
    };
    if start > end {
        return Err(Error::BadRequest(format!("invalid date range {period:?}: start is after end")));
    }
    if end - start > Duration::days(549) {
        return Err(Error::BadRequest(format!("date range {period:?} exceeds 18 months")));
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        let (s, e) = parse_period("last-week").unwrap();
        assert_eq!((e - s).num_days(), 6);
        let (s, e) = parse_period("2024-01-01:2024-01-31").unwrap();
        assert_eq!((s.to_string(), e.to_string()), ("2024-01-01".into(), "2024-01-31".into()));
        assert!(parse_period("2024-02-01:2024-01-01").is_err());
        assert!(parse_period("yesterday").is_err());
        assert!(parse_period("2020-01-01:2024-01-01").is_err());
    }
}
