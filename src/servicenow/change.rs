//! Change requests and the records around them: lookups, creation without duplicates, verified
//! state changes, closing, work notes, journal and approvers, and incidents for alerts.
//!
//! Each write that matters is checked by reading the record back, because ServiceNow can answer
//! 200 to a PATCH that a business rule or the state model silently refused.

use chrono::NaiveDateTime;
use reqwest::Method;
use serde_json::{Map, Value};
use tracing::{debug, info, warn};

use super::client::{Client, Idempotency, result_object};
use super::error::Error;
use super::model::{
    APPROVER_FIELDS, Approver, CHANGE_FIELDS, ChangeRequest, CloseCode, Created, JOURNAL_FIELDS,
    JournalEntry, Record, State,
};
use super::query::{CorrelationId, EncodedQuery, SysId, chunk_by_encoded_len};

const CHANGE: &str = "change_request";

/// Rows changed since a watermark, and the watermark to store for the next pass.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangesSince {
    /// Changed records, oldest update first. Rows updated in the watermark's own second come
    /// again next pass (`>=`); dedupe them by `sys_mod_count`.
    pub changes: Vec<ChangeRequest>,
    /// The newest `sys_updated_on` seen (or the old mark when nothing changed); never later.
    pub watermark: Option<NaiveDateTime>,
}

impl Client {
    /// Reads one CHG by sys_id; `None` when missing or hidden by an ACL (404).
    pub async fn get_change(&self, sys_id: &SysId) -> Result<Option<ChangeRequest>, Error> {
        let mut url = self.table_url(CHANGE, Some(sys_id.as_str()))?;
        url.query_pairs_mut()
            .append_pair("sysparm_fields", &CHANGE_FIELDS.join(","))
            .append_pair("sysparm_display_value", "false")
            .append_pair("sysparm_exclude_reference_link", "true");
        match self.send(Method::GET, CHANGE, url, None, Idempotency::Safe).await {
            Ok(reply) => {
                ChangeRequest::from_record(&result_object(&reply.body, "GET", CHANGE)?).map(Some)
            }
            Err(Error::Api { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The CHG carrying `correlation_id`, if any; two or more is an error (never guess).
    pub async fn find_change(
        &self,
        correlation_id: &CorrelationId,
    ) -> Result<Option<ChangeRequest>, Error> {
        let query = EncodedQuery::new().correlation_eq(correlation_id).order_by("sys_id");
        let mut changes = self.list_changes(&query).await?;
        // An instance that ignored the term would return everything: keep exact matches only.
        changes.retain(|c| c.correlation_id == correlation_id.as_str());
        match changes.len() {
            0 => Ok(None),
            1 => Ok(changes.pop()),
            count => Err(Error::DuplicateCorrelation {
                table: CHANGE.to_owned(),
                correlation_id: correlation_id.to_string(),
                count,
            }),
        }
    }

    /// The CHGs of many correlation ids in as few calls as the URL length allows
    /// (`correlation_idIN…`, split by [`super::ClientOptions::max_in_list_len`]).
    pub async fn find_changes(
        &self,
        correlation_ids: &[CorrelationId],
    ) -> Result<Vec<ChangeRequest>, Error> {
        let mut all = Vec::new();
        let budget = self.options().max_in_list_len;
        for chunk in chunk_by_encoded_len(correlation_ids, budget) {
            let query = EncodedQuery::new().correlation_in(&chunk)?.order_by("sys_id");
            let mut changes = self.list_changes(&query).await?;
            changes.retain(|c| chunk.iter().any(|id| id.as_str() == c.correlation_id));
            all.extend(changes);
        }
        Ok(all)
    }

    /// The CHGs with these sys_ids in as few calls as the URL length allows (`sys_idIN…`).
    /// Ids that are missing or hidden by an ACL are simply absent from the answer.
    pub async fn get_changes(&self, sys_ids: &[SysId]) -> Result<Vec<ChangeRequest>, Error> {
        let mut all = Vec::new();
        for chunk in chunk_by_encoded_len(sys_ids, self.options().max_in_list_len) {
            let query = EncodedQuery::new().sys_id_in("sys_id", &chunk)?.order_by("sys_id");
            let mut changes = self.list_changes(&query).await?;
            changes.retain(|c| chunk.contains(&c.sys_id));
            all.extend(changes);
        }
        Ok(all)
    }

    /// Every active CHG whose correlation id starts with `scope`: the one list query a pass
    /// needs to see every open CHG cabgate manages.
    pub async fn active_changes(&self, scope: &CorrelationId) -> Result<Vec<ChangeRequest>, Error> {
        let query = EncodedQuery::new()
            .correlation_starts_with(scope)
            .constant("active=true")
            .order_by("sys_id");
        let mut changes = self.list_changes(&query).await?;
        changes.retain(|c| c.active && c.correlation_id.starts_with(scope.as_str()));
        Ok(changes)
    }

    /// CHGs whose correlation id starts with `scope`, updated at or after `since`.
    ///
    /// The returned watermark is the newest `sys_updated_on` among the rows read (timestamps are
    /// whole seconds, so `>=` re-reads the last second instead of losing rows written in it).
    pub async fn changes_updated_since(
        &self,
        scope: &CorrelationId,
        since: Option<NaiveDateTime>,
    ) -> Result<ChangesSince, Error> {
        let mut query = EncodedQuery::new().correlation_starts_with(scope);
        if let Some(since) = since {
            query = query.at_or_after("sys_updated_on", since);
        }
        let query = query.order_by("sys_updated_on").order_by("sys_id");
        let changes = self.list_changes(&query).await?;
        let newest = changes.iter().filter_map(|c| c.sys_updated_on).max();
        let watermark = match (since, newest) {
            (Some(old), Some(new)) => Some(old.max(new)),
            (old, new) => old.or(new),
        };
        Ok(ChangesSince { changes, watermark })
    }

    async fn list_changes(&self, query: &EncodedQuery) -> Result<Vec<ChangeRequest>, Error> {
        let rows = self.list(CHANGE, query, CHANGE_FIELDS).await?;
        rows.iter().map(ChangeRequest::from_record).collect()
    }

    /// Opens a CHG for `correlation_id` with `fields` (stored values), unless one exists.
    ///
    /// Looks the correlation id up before every POST, and again after a POST whose response was
    /// lost (timeout, reset, 5xx), so a retry or a second runner finds the CHG instead of opening
    /// another. Returns the CHG with `created: false` when it already existed.
    pub async fn create_change(
        &self,
        correlation_id: &CorrelationId,
        fields: &Map<String, Value>,
    ) -> Result<Created, Error> {
        let find = || async {
            Ok(self.find_change(correlation_id).await?.map(|c| Created {
                sys_id: c.sys_id,
                number: c.number,
                created: false,
                unapplied: Vec::new(),
            }))
        };
        self.create_once(CHANGE, correlation_id, fields, find).await
    }

    /// Creates a record in `table` keyed by `correlation_id`, unless one exists (see
    /// [`Client::create_change`]); used for alert incidents.
    pub async fn create_record_once(
        &self,
        table: &str,
        correlation_id: &CorrelationId,
        fields: &Map<String, Value>,
    ) -> Result<Created, Error> {
        let find = || async { self.find_record(table, correlation_id).await };
        self.create_once(table, correlation_id, fields, find).await
    }

    async fn find_record(
        &self,
        table: &str,
        correlation_id: &CorrelationId,
    ) -> Result<Option<Created>, Error> {
        let query = EncodedQuery::new().correlation_eq(correlation_id).order_by("sys_id");
        let rows = self.list(table, &query, &["sys_id", "number", "correlation_id"]).await?;
        let mut found = Vec::new();
        for row in &rows {
            let r = Record { table: "record", record: row };
            if r.text("correlation_id")? == correlation_id.as_str() {
                found.push(Created {
                    sys_id: r.sys_id("sys_id")?,
                    number: r.text("number")?.to_owned(),
                    created: false,
                    unapplied: Vec::new(),
                });
            }
        }
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            count => Err(Error::DuplicateCorrelation {
                table: table.to_owned(),
                correlation_id: correlation_id.to_string(),
                count,
            }),
        }
    }

    async fn create_once<F, Fut>(
        &self,
        table: &str,
        correlation_id: &CorrelationId,
        fields: &Map<String, Value>,
        find: F,
    ) -> Result<Created, Error>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Option<Created>, Error>>,
    {
        let mut body = fields.clone();
        body.insert("correlation_id".to_owned(), Value::String(correlation_id.to_string()));
        let max_attempts = self.options().retry.max_attempts;
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(existing) = find().await? {
                debug!(table, number = %existing.number, "found by correlation_id; not creating");
                return Ok(existing);
            }
            let mut url = self.table_url(table, None)?;
            let mut asked: Vec<&str> = vec!["sys_id", "number"];
            asked.extend(body.keys().map(String::as_str).filter(|k| !is_journal(k)));
            url.query_pairs_mut()
                .append_pair("sysparm_fields", &asked.join(","))
                .append_pair("sysparm_exclude_reference_link", "true");
            let body = Value::Object(body.clone());
            match self.send(Method::POST, table, url, Some(&body), Idempotency::Unsafe).await {
                Ok(reply) => {
                    let record = result_object(&reply.body, "POST", table)?;
                    let r = Record { table: "record", record: &record };
                    let written = r.text("correlation_id")?;
                    if written != correlation_id.as_str() {
                        // Without its key the record could never be found again: every later
                        // pass would open another one.
                        return Err(Error::FieldNotWritten {
                            table: table.to_owned(),
                            sys_id: r.text("sys_id")?.to_owned(),
                            field: "correlation_id".to_owned(),
                            actual: written.to_owned(),
                        });
                    }
                    let created = Created {
                        sys_id: r.sys_id("sys_id")?,
                        number: r.text("number")?.to_owned(),
                        created: true,
                        unapplied: not_stored(fields, &record),
                    };
                    info!(table, number = %created.number, "created");
                    if !created.unapplied.is_empty() {
                        // The record exists now; failing would not undo it. Say it loudly.
                        warn!(table, number = %created.number, fields = ?created.unapplied,
                            "the instance did not store these fields as sent (unknown field, \
                             read-only, ACL or business rule)");
                    }
                    return Ok(created);
                }
                Err(error @ Error::Unconfirmed { .. }) if attempt < max_attempts => {
                    // NOTE: a POST still running on the instance when its response timed out
                    // can land after this lookup; waiting first narrows that window, it cannot
                    // close it (the Table API has no idempotency key).
                    let wait = self.backoff(attempt);
                    warn!(table, attempt, %error, ?wait, "create unconfirmed; looking it up again");
                    tokio::time::sleep(wait).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// PATCHes plain fields of a CHG and returns it as re-read. Does not change the state (use
    /// [`Client::set_state`]), and refuses journal fields (use [`Client::add_work_note`]).
    pub async fn update_change(
        &self,
        sys_id: &SysId,
        fields: &Map<String, Value>,
    ) -> Result<ChangeRequest, Error> {
        for key in ["state", "work_notes", "comments", "correlation_id"] {
            if fields.contains_key(key) {
                return Err(Error::Config(format!(
                    "update_change does not write `{key}`; it has its own verified call"
                )));
            }
        }
        self.patch(CHANGE, sys_id, fields, Idempotency::Safe).await?;
        // A PATCH answers 200 even when a field is unknown, read-only or refused by an ACL or a
        // business rule: read the fields back and compare.
        let mut url = self.table_url(CHANGE, Some(sys_id.as_str()))?;
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        url.query_pairs_mut()
            .append_pair("sysparm_fields", &names.join(","))
            .append_pair("sysparm_display_value", "false")
            .append_pair("sysparm_exclude_reference_link", "true");
        let reply = self.send(Method::GET, CHANGE, url, None, Idempotency::Safe).await?;
        let stored = result_object(&reply.body, "GET", CHANGE)?;
        let unapplied = not_stored(fields, &stored);
        if !unapplied.is_empty() {
            return Err(Error::FieldsNotStored {
                table: CHANGE.to_owned(),
                sys_id: sys_id.to_string(),
                fields: unapplied,
            });
        }
        self.reread(sys_id).await
    }

    async fn patch(
        &self,
        table: &str,
        sys_id: &SysId,
        fields: &Map<String, Value>,
        idempotency: Idempotency,
    ) -> Result<(), Error> {
        let mut url = self.table_url(table, Some(sys_id.as_str()))?;
        url.query_pairs_mut()
            .append_pair("sysparm_fields", "sys_id")
            .append_pair("sysparm_exclude_reference_link", "true");
        let body = Value::Object(fields.clone());
        self.send(Method::PATCH, table, url, Some(&body), idempotency).await?;
        Ok(())
    }

    async fn reread(&self, sys_id: &SysId) -> Result<ChangeRequest, Error> {
        self.get_change(sys_id).await?.ok_or_else(|| Error::Api {
            method: "GET".into(),
            table: CHANGE.into(),
            status: 404,
            message: format!("change {sys_id} vanished after a write"),
            detail: None,
        })
    }

    /// Moves a CHG to `target` and proves it moved by reading it back. Already there: no write.
    pub async fn set_state(&self, sys_id: &SysId, target: &State) -> Result<ChangeRequest, Error> {
        let current = self.reread(sys_id).await?;
        if current.state == *target {
            return Ok(current);
        }
        let mut fields = Map::new();
        fields.insert("state".into(), Value::String(target.wire().to_owned()));
        self.patch(CHANGE, sys_id, &fields, Idempotency::Safe).await?;
        let after = self.reread(sys_id).await?;
        if after.state != *target {
            return Err(Error::StateNotChanged {
                number: after.number,
                wanted: target.to_string(),
                actual: after.state.to_string(),
            });
        }
        info!(number = %after.number, state = target.name(), "change moved");
        Ok(after)
    }

    /// Closes a CHG: close code and notes in one PATCH first (verified), then Implement → Review
    /// → Closed, each step verified. A CHG still Scheduled goes through Implement. Closing a
    /// closed CHG is a no-op.
    pub async fn close_change(
        &self,
        sys_id: &SysId,
        code: CloseCode,
        notes: &str,
    ) -> Result<ChangeRequest, Error> {
        let current = self.reread(sys_id).await?;
        if current.state == State::Closed {
            return Ok(current);
        }
        let path: &[State] = match current.state {
            State::Scheduled => &[State::Implement, State::Review, State::Closed],
            State::Implement => &[State::Review, State::Closed],
            State::Review => &[State::Closed],
            ref other => {
                return Err(Error::StateNotChanged {
                    number: current.number.clone(),
                    wanted: State::Closed.to_string(),
                    actual: format!("{other}, from which a change cannot be closed; cancel it"),
                });
            }
        };
        let mut fields = Map::new();
        fields.insert("close_code".into(), Value::String(code.wire().to_owned()));
        fields.insert("close_notes".into(), Value::String(notes.to_owned()));
        self.patch(CHANGE, sys_id, &fields, Idempotency::Safe).await?;
        let written = self.reread(sys_id).await?;
        if written.close_code != code.wire() {
            return Err(Error::FieldNotWritten {
                table: CHANGE.into(),
                sys_id: sys_id.to_string(),
                field: "close_code".into(),
                actual: written.close_code,
            });
        }
        let mut last = written;
        for step in path {
            last = self.set_state(sys_id, step).await?;
        }
        Ok(last)
    }

    /// Cancels a CHG with a work note saying why. Cancel is impossible from Review and Closed;
    /// canceling a canceled CHG is a no-op.
    pub async fn cancel_change(
        &self,
        sys_id: &SysId,
        reason: &str,
    ) -> Result<ChangeRequest, Error> {
        let current = self.reread(sys_id).await?;
        match current.state {
            State::Canceled => return Ok(current),
            State::Review | State::Closed => {
                return Err(Error::StateNotChanged {
                    number: current.number,
                    wanted: State::Canceled.to_string(),
                    actual: format!("{}, from which a change cannot be canceled", current.state),
                });
            }
            _ => {}
        }
        self.add_work_note(sys_id, reason).await?;
        self.set_state(sys_id, &State::Canceled).await
    }

    /// Appends a work note. A journal append is not idempotent: when the response is lost, the
    /// journal is read before writing again, so the note appears once.
    ///
    /// NOTE: the check matches on the text: if the same note was already in the journal from an
    /// earlier write, a lost response is taken as success rather than writing it a second time.
    pub async fn add_work_note(&self, sys_id: &SysId, text: &str) -> Result<(), Error> {
        let mut fields = Map::new();
        fields.insert("work_notes".into(), Value::String(text.to_owned()));
        let max_attempts = self.options().retry.max_attempts;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.patch(CHANGE, sys_id, &fields, Idempotency::Unsafe).await {
                Ok(()) => return Ok(()),
                Err(error @ Error::Unconfirmed { .. }) if attempt < max_attempts => {
                    warn!(%error, "work note unconfirmed; reading the journal");
                    let journal = self.journal(sys_id).await?;
                    if journal.iter().any(|e| e.element == "work_notes" && e.value == text) {
                        return Ok(());
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The CHG's comments and work notes, oldest first (`sys_journal_field`; the record's own
    /// `work_notes` field reads back empty).
    pub async fn journal(&self, sys_id: &SysId) -> Result<Vec<JournalEntry>, Error> {
        let query = EncodedQuery::new()
            .constant("name=change_request")
            .sys_id_eq("element_id", sys_id)
            .constant("elementINcomments,work_notes")
            .order_by("sys_created_on")
            .order_by("sys_id");
        let rows = self.list("sys_journal_field", &query, JOURNAL_FIELDS).await?;
        rows.iter().map(JournalEntry::from_record).collect()
    }

    /// The approver rows of a CHG, oldest update first, with the comments of each decisive row
    /// (read from the journal when the field itself reads back empty).
    pub async fn approvers(&self, change: &SysId) -> Result<Vec<Approver>, Error> {
        let query = EncodedQuery::new()
            .sys_id_eq("sysapproval", change)
            .order_by("sys_updated_on")
            .order_by("sys_id");
        let rows = self.list("sysapproval_approver", &query, APPROVER_FIELDS).await?;
        let mut approvers: Vec<Approver> =
            rows.iter().map(Approver::from_record).collect::<Result<_, _>>()?;
        for approver in approvers.iter_mut().filter(|a| a.state.is_decisive()) {
            if approver.comments.is_empty() {
                approver.comments = self.approval_comments(&approver.sys_id).await?;
            }
        }
        Ok(approvers)
    }

    async fn approval_comments(&self, approval: &SysId) -> Result<String, Error> {
        let query = EncodedQuery::new()
            .constant("name=sysapproval_approver")
            .sys_id_eq("element_id", approval)
            .constant("element=comments")
            .order_by("sys_created_on")
            .order_by("sys_id");
        let rows = self.list("sys_journal_field", &query, JOURNAL_FIELDS).await?;
        let entries: Vec<JournalEntry> =
            rows.iter().map(JournalEntry::from_record).collect::<Result<_, _>>()?;
        Ok(entries.into_iter().map(|e| e.value).collect::<Vec<_>>().join("\n"))
    }

    /// The sys_id of the `sys_user_group` named `name` (reference fields take sys_ids, the spec
    /// names groups). `None` when no group has that name; two groups with it is an error.
    pub async fn group_sys_id(&self, name: &str) -> Result<Option<SysId>, Error> {
        let query = EncodedQuery::new().text_eq("name", name)?.order_by("sys_id");
        let rows = self.list("sys_user_group", &query, &["sys_id", "name"]).await?;
        let mut found = Vec::new();
        for row in &rows {
            let r = Record { table: "sys_user_group", record: row };
            // An instance that dropped the term would list every group: keep exact matches.
            if r.text("name")? == name {
                found.push(r.sys_id("sys_id")?);
            }
        }
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            count => Err(Error::AmbiguousName {
                table: "sys_user_group".into(),
                name: name.to_owned(),
                count,
            }),
        }
    }

    /// Raw list access for tables the typed calls do not cover (read-only, stored values).
    pub async fn list_records(
        &self,
        table: &str,
        query: &EncodedQuery,
        fields: &[&str],
    ) -> Result<Vec<Map<String, Value>>, Error> {
        self.list(table, query, fields).await
    }
}

/// Journal fields read back empty as stored values; they cannot be compared.
fn is_journal(field: &str) -> bool {
    matches!(field, "work_notes" | "comments")
}

/// The fields of `sent` that `stored` does not hold with the same string value.
fn not_stored(sent: &Map<String, Value>, stored: &Map<String, Value>) -> Vec<String> {
    sent.iter()
        .filter(|(name, _)| !is_journal(name))
        .filter(|(name, value)| {
            let wanted = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let actual = match stored.get(name.as_str()) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Object(reference)) => {
                    reference.get("value").and_then(Value::as_str).map(str::to_owned)
                }
                _ => None,
            };
            actual.as_deref() != Some(wanted.as_str())
        })
        .map(|(name, _)| name.clone())
        .collect()
}
