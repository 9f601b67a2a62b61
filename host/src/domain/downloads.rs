//! Download counts: counted in memory per (package, version, day) and added to
//! the database in batches, so a tarball download never waits on a write.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{Duration, NaiveDate, Utc};

use crate::store::Store;

use super::{Error, Result};

/// Pending counts: day → package → version → downloads. Nested so that
/// counting a download already seen today allocates nothing.
type Pending = HashMap<NaiveDate, HashMap<String, HashMap<String, i64>>>;

#[derive(Default)]
pub struct DownloadCounter {
    pending: Mutex<Pending>,
}

fn add(map: &mut Pending, day: NaiveDate, package: &str, version: &str, n: i64) {
    let packages = map.entry(day).or_default();
    let versions = match packages.get_mut(package) {
        Some(v) => v,
        None => packages.entry(package.to_string()).or_default(),
    };
    match versions.get_mut(version) {
        Some(count) => *count += n,
        None => {
            versions.insert(version.to_string(), n);
        }
    }
}

impl DownloadCounter {
    pub fn count(&self, package: &str, version: &str) {
        let day = Utc::now().date_naive();
        add(&mut self.pending.lock().expect("download lock"), day, package, version, 1);
    }

    pub async fn flush(&self, store: &dyn Store) -> Result<usize> {
        let pending = std::mem::take(&mut *self.pending.lock().expect("download lock"));
        let mut batch: Vec<(String, String, String, i64)> = Vec::new();
        for (day, packages) in &pending {
            let day = day.format("%Y-%m-%d").to_string();
            for (package, versions) in packages {
                batch.extend(versions.iter().map(|(v, n)| (package.clone(), v.clone(), day.clone(), *n)));
            }
        }
        if batch.is_empty() {
            return Ok(0);
        }
        if let Err(e) = store.add_downloads(&batch).await {
            // Kept for the next flush, added to what was counted meanwhile.
            let mut map = self.pending.lock().expect("download lock");
            for (day, packages) in pending {
                for (package, versions) in packages {
                    for (version, n) in versions {
                        add(&mut map, day, &package, &version, n);
                    }
                }
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

    #[test]
    fn counts_add_up_per_day_package_and_version() {
        let mut map = Pending::new();
        let (d1, d2) = (NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(), NaiveDate::from_ymd_opt(2026, 1, 2).unwrap());
        for (day, p, v, n) in
            [(d1, "a", "1.0.0", 1), (d1, "a", "1.0.0", 2), (d1, "a", "2.0.0", 1), (d1, "@s/b", "1.0.0", 1), (d2, "a", "1.0.0", 5)]
        {
            add(&mut map, day, p, v, n);
        }
        assert_eq!(map[&d1]["a"]["1.0.0"], 3);
        assert_eq!(map[&d1]["a"]["2.0.0"], 1);
        assert_eq!(map[&d1]["@s/b"]["1.0.0"], 1);
        assert_eq!(map[&d2]["a"]["1.0.0"], 5);
        assert_eq!(map[&d2].len(), 1);
    }
}
