//! `/downloads/point/:period/:name` and `/downloads/range/:period/:name`, in npm's format.

use chrono::Duration;
use serde_json::json;

use crate::domain::downloads::parse_period;
use crate::domain::reads::{self, Reader};

use super::{ok_json, ApiError, ApiResult, Req};

async fn counts(req: &Req, period: &str, name: &str) -> Result<(String, String, Vec<(String, i64)>), ApiError> {
    let (start, end) = parse_period(period)?;
    let (start, end) = (start.format("%Y-%m-%d").to_string(), end.format("%Y-%m-%d").to_string());
    let reader = Reader::new(req.identity.as_ref(), req.client_ip);
    let rows = reads::downloads(&req.app, reader, name, &start, &end).await?;
    Ok((start, end, rows))
}

pub async fn point(req: Req, period: &str, name: &str) -> ApiResult {
    let (start, end, rows) = counts(&req, period, name).await?;
    let total: i64 = rows.iter().map(|(_, n)| n).sum();
    ok_json(json!({"downloads": total, "start": start, "end": end, "package": name}))
}

pub async fn range(req: Req, period: &str, name: &str) -> ApiResult {
    let (start, end, rows) = counts(&req, period, name).await?;
    let (first, last) = parse_period(period)?;
    let mut days = Vec::new();
    let mut day = first;
    while day <= last {
        let key = day.format("%Y-%m-%d").to_string();
        let n = rows.iter().find(|(d, _)| *d == key).map_or(0, |(_, n)| *n);
        days.push(json!({"downloads": n, "day": key}));
        day += Duration::days(1);
    }
    ok_json(json!({"downloads": days, "start": start, "end": end, "package": name}))
}
