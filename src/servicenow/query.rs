//! Pure request building: validated identifiers, encoded queries, `Link` headers, chunking.
//!
//! ServiceNow ignores an invalid query term instead of rejecting it, so a typo or an empty id can
//! turn `sys_id=` into "every record" (reference pitfall 3). Every value that goes into an encoded
//! query therefore passes through a validated type first: [`SysId`] (32 hex digits) or
//! [`CorrelationId`] (no query syntax, at most 100 characters). Nothing here does IO.

use std::fmt;

use chrono::NaiveDateTime;

use super::error::Error;

/// The longest `correlation_id` ServiceNow stores.
pub const CORRELATION_ID_MAX: usize = 100;

/// The stored date format of the Table API: UTC, whole seconds, no zone suffix.
pub const SN_DATE_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// A record's `sys_id`: exactly 32 hexadecimal digits (stored lowercase).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SysId(String);

impl SysId {
    /// Validates a sys_id, so it can never widen a query.
    pub fn parse(value: &str) -> Result<Self, Error> {
        if value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(SysId(value.to_ascii_lowercase()))
        } else {
            Err(Error::InvalidSysId { value: value.to_owned() })
        }
    }

    /// The id as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SysId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The external key cabgate puts in `correlation_id` (the Bytebase issue name, or an alert key).
///
/// Never empty, at most 100 characters, printable ASCII without spaces, `^` (the query's AND) or
/// `,` (the `IN` list separator).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CorrelationId(String);

impl CorrelationId {
    /// Validates a correlation id before it is used in any query or write.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let reject = |reason: &'static str| Error::InvalidCorrelationId {
            value: value.chars().take(120).collect(),
            reason,
        };
        if value.is_empty() {
            return Err(reject("it is empty"));
        }
        if value.chars().count() > CORRELATION_ID_MAX {
            return Err(reject("it is longer than 100 characters"));
        }
        if value.contains('^') {
            return Err(reject("it contains `^`, the encoded query's separator"));
        }
        if value.contains(',') {
            return Err(reject("it contains `,`, the IN list separator"));
        }
        if value.chars().any(char::is_whitespace) {
            return Err(reject("it contains whitespace"));
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(reject("it contains a character outside printable ASCII"));
        }
        Ok(CorrelationId(value.to_owned()))
    }

    /// The id as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An encoded query (`sysparm_query`) built only from validated terms.
///
/// Terms are joined by `^`; ordering terms always come last so every list is stable across pages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedQuery {
    terms: Vec<String>,
    order: Vec<String>,
}

impl EncodedQuery {
    /// An empty query (matches everything; callers always add terms).
    pub fn new() -> Self {
        EncodedQuery::default()
    }

    /// `field=sys_id`.
    pub fn sys_id_eq(mut self, field: &str, id: &SysId) -> Self {
        self.terms.push(format!("{field}={id}"));
        self
    }

    /// `correlation_id=id`.
    pub fn correlation_eq(mut self, id: &CorrelationId) -> Self {
        self.terms.push(format!("correlation_id={id}"));
        self
    }

    /// `field=value` for a free-text value (a group name): refused when empty or when it holds
    /// `^` or a line break, which would end the term and start another.
    pub fn text_eq(mut self, field: &str, value: &str) -> Result<Self, Error> {
        let reason = if value.trim().is_empty() {
            Some("it is empty")
        } else if value.contains('^') {
            Some("it contains `^`, the encoded query's separator")
        } else if value.contains(['\n', '\r']) {
            Some("it contains a line break")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(Error::InvalidQueryValue {
                field: field.to_owned(),
                value: value.chars().take(120).collect(),
                reason,
            });
        }
        self.terms.push(format!("{field}={value}"));
        Ok(self)
    }

    /// `correlation_idINa,b,c`; an empty list is refused rather than matching everything.
    pub fn correlation_in(mut self, ids: &[CorrelationId]) -> Result<Self, Error> {
        if ids.is_empty() {
            return Err(Error::EmptyQuery { what: "correlation_id IN list" });
        }
        let list: Vec<&str> = ids.iter().map(CorrelationId::as_str).collect();
        self.terms.push(format!("correlation_idIN{}", list.join(",")));
        Ok(self)
    }

    /// `fieldINa,b,c` over sys_ids; an empty list is refused rather than matching everything.
    pub fn sys_id_in(mut self, field: &str, ids: &[SysId]) -> Result<Self, Error> {
        if ids.is_empty() {
            return Err(Error::EmptyQuery { what: "sys_id IN list" });
        }
        let list: Vec<&str> = ids.iter().map(SysId::as_str).collect();
        self.terms.push(format!("{field}IN{}", list.join(",")));
        Ok(self)
    }

    /// `correlation_idSTARTSWITHprefix`; the prefix follows the correlation id rules.
    pub fn correlation_starts_with(mut self, prefix: &CorrelationId) -> Self {
        self.terms.push(format!("correlation_idSTARTSWITH{prefix}"));
        self
    }

    /// `field>=YYYY-MM-DD HH:MM:SS` (stored UTC format).
    pub fn at_or_after(mut self, field: &str, when: NaiveDateTime) -> Self {
        self.terms.push(format!("{field}>={}", when.format(SN_DATE_FORMAT)));
        self
    }

    /// A fixed term with a constant value written by cabgate itself (e.g. `active=true`,
    /// `elementINcomments,work_notes`). Never pass user input here.
    pub fn constant(mut self, term: &'static str) -> Self {
        self.terms.push(term.to_owned());
        self
    }

    /// `ORDERBYfield`, applied after earlier orderings.
    pub fn order_by(mut self, field: &str) -> Self {
        self.order.push(format!("ORDERBY{field}"));
        self
    }

    /// True when the query has an ordering; lists must have one to page stably.
    pub fn is_ordered(&self) -> bool {
        !self.order.is_empty()
    }

    /// The query string, terms first, orderings last.
    pub fn encode(&self) -> String {
        let mut all: Vec<&str> = self.terms.iter().map(String::as_str).collect();
        all.extend(self.order.iter().map(String::as_str));
        all.join("^")
    }
}

/// Splits ids into chunks whose `IN` term stays under `budget` bytes once URL-encoded.
///
/// Every chunk holds at least one id (a single id is at most ~300 encoded bytes), so the split
/// always makes progress.
pub fn chunk_by_encoded_len<T: Clone + fmt::Display>(ids: &[T], budget: usize) -> Vec<Vec<T>> {
    let mut chunks = Vec::new();
    let mut current: Vec<T> = Vec::new();
    let mut used = 0;
    for id in ids {
        // Each id costs its encoded length plus an encoded comma (`%2C`).
        let cost = encoded_len(&id.to_string()) + 3;
        if !current.is_empty() && used + cost > budget {
            chunks.push(std::mem::take(&mut current));
            used = 0;
        }
        used += cost;
        current.push(id.clone());
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Length of `value` once percent-encoded as a query component.
pub fn encoded_len(value: &str) -> usize {
    url::form_urlencoded::byte_serialize(value.as_bytes()).map(str::len).sum()
}

/// The `rel="next"` target of a `Link` header, if any.
///
/// Handles several links in one header and commas inside the `<…>` URL (an unencoded `IN` list).
pub fn next_link(header: &str) -> Option<String> {
    let mut rest = header;
    loop {
        let start = rest.find('<')?;
        let end = start + rest[start..].find('>')?;
        let target = &rest[start + 1..end];
        let after = &rest[end + 1..];
        // The parameters run to the next link, which starts with `<` after a comma.
        let params_end = after.find('<').unwrap_or(after.len());
        let params = &after[..params_end];
        let is_next = params.split(';').any(|param| {
            let Some((key, value)) = param.split_once('=') else { return false };
            key.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_matches(|c| c == '"' || c == ',')
                    .split_ascii_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.to_owned());
        }
        rest = &after[params_end..];
    }
}

/// Parses a stored date (`YYYY-MM-DD HH:MM:SS`, UTC); empty means none.
pub fn parse_sn_date(value: &str) -> Result<Option<NaiveDateTime>, chrono::ParseError> {
    if value.is_empty() {
        return Ok(None);
    }
    NaiveDateTime::parse_from_str(value, SN_DATE_FORMAT).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sys_id_accepts_32_hex_only() {
        assert!(SysId::parse("0123456789abcdef0123456789ABCDEF").is_ok());
        for bad in
            ["", "null", "0123456789abcdef0123456789abcde", "g123456789abcdef0123456789abcdef"]
        {
            assert!(SysId::parse(bad).is_err(), "{bad:?} must be refused");
        }
        let id = SysId::parse("0123456789ABCDEF0123456789ABCDEF").unwrap();
        assert_eq!(id.as_str(), "0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn correlation_id_refuses_query_syntax() {
        assert!(CorrelationId::parse("projects/payments/issues/42").is_ok());
        let cases = [
            ("", "empty"),
            ("a^b", "`^`"),
            ("a,b", "`,`"),
            ("a b", "whitespace"),
            ("a\tb", "whitespace"),
            ("é", "printable ASCII"),
        ];
        for (bad, why) in cases {
            let err = CorrelationId::parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert!(CorrelationId::parse(&"x".repeat(100)).is_ok());
        assert!(CorrelationId::parse(&"x".repeat(101)).is_err());
    }

    #[test]
    fn query_puts_orderings_last() {
        let id = CorrelationId::parse("projects/p/issues/1").unwrap();
        let q = EncodedQuery::new().order_by("sys_id").correlation_eq(&id).constant("active=true");
        assert_eq!(q.encode(), "correlation_id=projects/p/issues/1^active=true^ORDERBYsys_id");
    }

    #[test]
    fn text_value_cannot_smuggle_a_term() {
        let q = EncodedQuery::new().text_eq("name", "DB Security").unwrap().order_by("sys_id");
        assert_eq!(q.encode(), "name=DB Security^ORDERBYsys_id");
        for bad in ["", "  ", "x^ORname=y", "a\nb"] {
            assert!(EncodedQuery::new().text_eq("name", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn empty_in_list_is_refused() {
        assert!(EncodedQuery::new().correlation_in(&[]).is_err());
        assert!(EncodedQuery::new().sys_id_in("sys_id", &[]).is_err());
    }

    #[test]
    fn date_term_uses_stored_format() {
        let when = parse_sn_date("2026-12-03 16:05:09").unwrap().unwrap();
        let q = EncodedQuery::new().at_or_after("sys_updated_on", when).order_by("sys_updated_on");
        assert_eq!(q.encode(), "sys_updated_on>=2026-12-03 16:05:09^ORDERBYsys_updated_on");
        assert_eq!(parse_sn_date("").unwrap(), None);
        assert!(parse_sn_date("03/12/2026 16:05").is_err());
    }

    #[test]
    fn chunks_respect_budget_and_keep_every_id() {
        let ids: Vec<CorrelationId> = (0..50)
            .map(|i| CorrelationId::parse(&format!("projects/p/issues/{i}")).unwrap())
            .collect();
        let chunks = chunk_by_encoded_len(&ids, 200);
        assert!(chunks.len() > 1);
        for chunk in &chunks {
            let cost: usize = chunk.iter().map(|id| encoded_len(id.as_str()) + 3).sum();
            assert!(cost <= 200 || chunk.len() == 1);
        }
        let flat: Vec<CorrelationId> = chunks.into_iter().flatten().collect();
        assert_eq!(flat, ids);
    }

    #[test]
    fn next_link_finds_rel_next_among_others() {
        let header = "<https://x/api/now/v2/table/t?sysparm_offset=0>;rel=\"first\",\
                      <https://x/api/now/v2/table/t?sysparm_query=aINb,c&sysparm_offset=10>;\
                      rel=\"next\",<https://x/api/now/v2/table/t?sysparm_offset=90>;rel=\"last\"";
        assert_eq!(
            next_link(header).as_deref(),
            Some("https://x/api/now/v2/table/t?sysparm_query=aINb,c&sysparm_offset=10")
        );
        assert_eq!(next_link("<https://x/?o=0>;rel=\"first\",<https://x/?o=9>;rel=\"last\""), None);
        assert_eq!(next_link(""), None);
        assert_eq!(next_link("<https://x/?o=5>; rel=next").as_deref(), Some("https://x/?o=5"));
    }
}
