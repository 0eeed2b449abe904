//! The record store: every table as a list of rows of stored string values, in insertion order,
//! plus the pieces of instance state that are not rows (tokens, rate counters, number sequences).
//!
//! Rows hold stored values only (sys_ids for references, choice values, UTC date-times), which
//! is what the Table API returns by default; [`super::render`] derives display values.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::schema::{self, Kind};
use super::{World, approvals, auth, change};
use crate::sim::clock::Clock;

/// One row: field name → stored string value.
pub type Record = BTreeMap<String, String>;

/// Date-time format of stored values (UTC, no zone suffix).
pub const STORED_DATE_TIME: &str = "%Y-%m-%d %H:%M:%S";

/// The user the seeding and control writes are attributed to when none is named.
pub const SYSTEM_USER: &str = "system";

/// All tables and the non-row state of the instance.
#[derive(Debug)]
pub struct Db {
    tables: BTreeMap<&'static str, Vec<Record>>,
    rng: SmallRng,
    numbers: BTreeMap<&'static str, u64>,
    /// Issued OAuth tokens.
    pub tokens: auth::Tokens,
    /// Rate limit counters.
    pub rate: auth::RateCounters,
}

/// Formats an instant as a stored date-time.
pub fn stored(at: DateTime<Utc>) -> String {
    at.format(STORED_DATE_TIME).to_string()
}

/// The sys_id of a row (every row the store holds has one).
pub fn sys_id_of(rec: &Record) -> String {
    rec.get("sys_id").cloned().unwrap_or_default()
}

/// Whether `s` looks like a sys_id: 32 lowercase hex digits.
pub fn is_sys_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Db {
    /// The store as the world describes it.
    pub fn seeded(world: &World, clock: &Clock) -> Db {
        let mut db = Db {
            tables: schema::TABLES.iter().map(|t| (t.name, Vec::new())).collect(),
            rng: SmallRng::seed_from_u64(world.seed),
            numbers: BTreeMap::from([("change_request", 30000), ("incident", 10000)]),
            tokens: auth::Tokens::default(),
            rate: auth::RateCounters::default(),
        };
        let now = stored(clock.now());
        for user in &world.users {
            let sys_id = user.sys_id.clone().unwrap_or_else(|| db.new_sys_id());
            let (first, last) = user.name.split_once(' ').unwrap_or((&user.name, ""));
            let mut rec = Record::from([
                ("sys_id".into(), sys_id),
                ("user_name".into(), user.user_name.clone()),
                ("name".into(), user.name.clone()),
                ("first_name".into(), first.to_string()),
                ("last_name".into(), last.to_string()),
                ("email".into(), user.email.clone()),
                ("active".into(), user.active.unwrap_or(true).to_string()),
                ("time_zone".into(), user.time_zone.clone().unwrap_or_default()),
            ]);
            stamp_insert(&mut rec, SYSTEM_USER, &now);
            db.push("sys_user", rec);
        }
        for group in &world.groups {
            let sys_id = group.sys_id.clone().unwrap_or_else(|| db.new_sys_id());
            let manager = group.manager.as_deref().and_then(|m| db.user_id(m)).unwrap_or_default();
            let mut rec = Record::from([
                ("sys_id".into(), sys_id.clone()),
                ("name".into(), group.name.clone()),
                ("description".into(), group.description.clone()),
                ("email".into(), String::new()),
                ("active".into(), "true".into()),
                ("manager".into(), manager),
            ]);
            stamp_insert(&mut rec, SYSTEM_USER, &now);
            db.push("sys_user_group", rec);
            for member in &group.members {
                let Some(user) = db.user_id(member) else { continue };
                let mut rec = Record::from([
                    ("sys_id".into(), db.new_sys_id()),
                    ("user".into(), user),
                    ("group".into(), sys_id.clone()),
                ]);
                stamp_insert(&mut rec, SYSTEM_USER, &now);
                db.push("sys_user_grmember", rec);
            }
        }
        db.seed_choices(world, &now);
        for (table, seeds) in
            [("change_request", &world.change_requests), ("incident", &world.incidents)]
        {
            for seed in seeds {
                let mut rec = Record::new();
                for (field, value) in seed {
                    let value = match value {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    let value = db.resolve_reference_name(table, field, value);
                    rec.insert(field.clone(), value);
                }
                let sys_id = rec.get("sys_id").cloned().unwrap_or_else(|| db.new_sys_id());
                rec.insert("sys_id".into(), sys_id.clone());
                stamp_insert(&mut rec, SYSTEM_USER, &now);
                change::defaults_on_insert(&mut db, table, &mut rec, SYSTEM_USER, &now);
                let awaits_cab = table == "change_request"
                    && !seed.contains_key("approval")
                    && matches!(
                        rec.get("state").map(String::as_str),
                        Some(change::ASSESS | change::AUTHORIZE)
                    );
                db.push(table, rec);
                if awaits_cab {
                    approvals::request(&mut db, world, &sys_id, SYSTEM_USER, &now);
                }
            }
        }
        db
    }

    /// `sys_choice`: the choice lists of the dictionary, plus the custom model's extra states.
    fn seed_choices(&mut self, world: &World, now: &str) {
        let mut choices = Vec::new();
        for table in schema::TABLES {
            for field in table.all_fields() {
                let Kind::Choice(list) = field.kind else { continue };
                let mut pairs: Vec<(String, String)> =
                    list.iter().map(|(v, l)| (v.to_string(), l.to_string())).collect();
                if table.name == "change_request" && field.name == "state" {
                    pairs.extend(
                        world.extra_states.iter().map(|e| (e.value.clone(), e.label.clone())),
                    );
                }
                for (sequence, (value, label)) in pairs.into_iter().enumerate() {
                    choices.push((table.name, field.name, value, label, sequence));
                }
            }
        }
        for (table, element, value, label, sequence) in choices {
            let mut rec = Record::from([
                ("sys_id".into(), self.new_sys_id()),
                ("name".into(), table.to_string()),
                ("element".into(), element.to_string()),
                ("value".into(), value),
                ("label".into(), label),
                ("language".into(), "en".into()),
                ("sequence".into(), sequence.to_string()),
                ("inactive".into(), "false".into()),
            ]);
            stamp_insert(&mut rec, SYSTEM_USER, now);
            self.push("sys_choice", rec);
        }
    }

    /// A reference given by name in a seed becomes the sys_id of the named record.
    fn resolve_reference_name(&self, table: &str, field: &str, value: String) -> String {
        let Some(f) = schema::table(table).and_then(|t| t.field(field)) else { return value };
        let Kind::Reference { table: target, .. } = f.kind else { return value };
        if value.is_empty() || is_sys_id(&value) {
            return value;
        }
        let key = match target {
            "sys_user" => "user_name",
            _ => "name",
        };
        self.find(target, key, &value).map(sys_id_of).unwrap_or(value)
    }

    /// A fresh 32-hex sys_id.
    pub fn new_sys_id(&mut self) -> String {
        let bytes: [u8; 16] = self.rng.random();
        hex::encode(bytes)
    }

    /// Random opaque token text.
    pub fn new_token(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        (0..86).map(|_| ALPHABET[self.rng.random_range(0..ALPHABET.len())] as char).collect()
    }

    /// The next record number of a table: `CHG0030001`, `INC0010001`.
    pub fn next_number(&mut self, table: &'static str) -> String {
        let prefix = if table == "incident" { "INC" } else { "CHG" };
        let n = self.numbers.entry(table).or_insert(0);
        *n += 1;
        format!("{prefix}{n:07}")
    }

    /// Appends a row.
    pub fn push(&mut self, table: &str, rec: Record) {
        if let Some(rows) = self.tables.get_mut(table) {
            rows.push(rec);
        }
    }

    /// All rows of a table, in insertion order.
    pub fn rows(&self, table: &str) -> &[Record] {
        self.tables.get(table).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The row with this sys_id.
    pub fn get(&self, table: &str, sys_id: &str) -> Option<&Record> {
        self.rows(table).iter().find(|r| r.get("sys_id").is_some_and(|s| s == sys_id))
    }

    /// The row with this sys_id, mutably.
    pub fn get_mut(&mut self, table: &str, sys_id: &str) -> Option<&mut Record> {
        self.tables
            .get_mut(table)?
            .iter_mut()
            .find(|r| r.get("sys_id").is_some_and(|s| s == sys_id))
    }

    /// Removes the row with this sys_id; whether it existed.
    pub fn remove(&mut self, table: &str, sys_id: &str) -> bool {
        let Some(rows) = self.tables.get_mut(table) else { return false };
        let before = rows.len();
        rows.retain(|r| r.get("sys_id").is_none_or(|s| s != sys_id));
        rows.len() != before
    }

    /// The first row whose `field` equals `value`.
    pub fn find(&self, table: &str, field: &str, value: &str) -> Option<&Record> {
        self.rows(table).iter().find(|r| r.get(field).is_some_and(|v| v == value))
    }

    /// The sys_id of the user with this user_name.
    pub fn user_id(&self, user_name: &str) -> Option<String> {
        self.find("sys_user", "user_name", user_name).map(sys_id_of)
    }

    /// The sys_user row of a user_name.
    pub fn user(&self, user_name: &str) -> Option<&Record> {
        self.find("sys_user", "user_name", user_name)
    }
}

/// Sets the `sys_*` fields of a new row.
pub fn stamp_insert(rec: &mut Record, user: &str, now: &str) {
    rec.insert("sys_created_on".into(), now.to_string());
    rec.insert("sys_created_by".into(), user.to_string());
    rec.insert("sys_updated_on".into(), now.to_string());
    rec.insert("sys_updated_by".into(), user.to_string());
    rec.insert("sys_mod_count".into(), "0".into());
}

/// Sets the `sys_*` fields of an updated row.
pub fn stamp_update(rec: &mut Record, user: &str, now: &str) {
    let count = rec.get("sys_mod_count").and_then(|c| c.parse::<u64>().ok()).unwrap_or(0);
    rec.insert("sys_mod_count".into(), (count + 1).to_string());
    rec.insert("sys_updated_on".into(), now.to_string());
    rec.insert("sys_updated_by".into(), user.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sys_ids_are_32_hex_and_replay_from_the_seed() {
        let world = World { seed: 3, ..World::default() };
        let clock = Clock::new();
        let mut a = Db::seeded(&world, &clock);
        let mut b = Db::seeded(&world, &clock);
        let id = a.new_sys_id();
        assert!(is_sys_id(&id), "{id}");
        assert_eq!(id, b.new_sys_id());
    }

    #[test]
    fn numbers_count_up_per_table() {
        let mut db = Db::seeded(&World::default(), &Clock::new());
        assert_eq!(db.next_number("change_request"), "CHG0030001");
        assert_eq!(db.next_number("change_request"), "CHG0030002");
        assert_eq!(db.next_number("incident"), "INC0010001");
    }
}
