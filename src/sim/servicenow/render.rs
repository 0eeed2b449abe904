//! The JSON shape of a record as the Table API returns it.
//!
//! Every value is a JSON string. `sysparm_display_value=false` (default) returns stored values,
//! `true` returns labels, display names and date-times in the caller's time zone and format,
//! `all` returns `{"display_value","value"}` per field. References come back as
//! `{"link","value"}` unless `sysparm_exclude_reference_link=true`. Journal fields read as `""`
//! in stored mode; in display mode they show the entries, newest first.

use chrono::{FixedOffset, NaiveDateTime, Offset, TimeZone, Utc};
use serde_json::{Map, Value, json};

use super::ExtraState;
use super::journal;
use super::query::{field_of_path, split_path, value_at};
use super::records::{Db, Record, STORED_DATE_TIME};
use super::schema::{self, Field, Kind, Table};

/// `sysparm_display_value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DisplayMode {
    /// `false`: stored values.
    #[default]
    Stored,
    /// `true`: display values.
    Display,
    /// `all`: both.
    All,
}

impl DisplayMode {
    /// Parses the parameter; anything but `true`/`all` means stored values.
    pub fn parse(value: Option<&str>) -> DisplayMode {
        match value {
            Some("true") => DisplayMode::Display,
            Some("all") => DisplayMode::All,
            _ => DisplayMode::Stored,
        }
    }
}

/// The caller's locale: display values follow it.
#[derive(Debug, Clone)]
pub struct Locale {
    /// UTC offset.
    pub offset: FixedOffset,
    /// chrono format of date-times.
    pub date_format: String,
}

impl Default for Locale {
    fn default() -> Self {
        Locale { offset: Utc.fix(), date_format: STORED_DATE_TIME.into() }
    }
}

impl Locale {
    /// The locale of a world user (`time_zone: "+02:00"`, `date_format`).
    pub fn of(time_zone: Option<&str>, date_format: Option<&str>) -> Locale {
        let mut locale = Locale::default();
        if let Some(offset) = time_zone.and_then(|tz| tz.parse::<FixedOffset>().ok()) {
            locale.offset = offset;
        }
        if let Some(format) = date_format {
            locale.date_format = format.to_string();
        }
        locale
    }

    /// A stored UTC date-time as the caller sees it.
    pub fn show(&self, stored: &str) -> String {
        match NaiveDateTime::parse_from_str(stored, STORED_DATE_TIME) {
            Ok(naive) => {
                self.offset.from_utc_datetime(&naive).format(&self.date_format).to_string()
            }
            Err(_) => stored.to_string(),
        }
    }

    /// A date-time typed in the caller's zone and format, as stored (UTC).
    pub fn parse_input(&self, input: &str) -> Option<String> {
        let naive = NaiveDateTime::parse_from_str(input, &self.date_format).ok()?;
        let local = self.offset.from_local_datetime(&naive).single()?;
        Some(local.naive_utc().format(STORED_DATE_TIME).to_string())
    }
}

/// How to render records for one request.
#[derive(Debug, Clone)]
pub struct View<'a> {
    /// `sysparm_display_value`.
    pub mode: DisplayMode,
    /// `sysparm_exclude_reference_link`.
    pub exclude_link: bool,
    /// `sysparm_fields`, as written; `None`: every field.
    pub fields: Option<Vec<String>>,
    /// Scheme and authority of the instance, for `link` URLs.
    pub base: String,
    /// The caller's locale.
    pub locale: Locale,
    /// Fields ACLs hide in this table.
    pub hidden: &'a [String],
    /// States a custom change model adds.
    pub extra_states: &'a [ExtraState],
}

impl View<'_> {
    /// Renders one record.
    pub fn render(&self, db: &Db, table: &Table, rec: &Record) -> Map<String, Value> {
        let mut out = Map::new();
        let names: Vec<String> = match &self.fields {
            Some(fields) => fields.clone(),
            None => table.all_fields().map(|f| f.name.to_string()).collect(),
        };
        for name in names {
            let path = split_path(&name);
            if self.hidden.iter().any(|h| *h == path[0]) {
                continue;
            }
            let Some(field) = field_of_path(table, &path) else { continue };
            let stored = value_at(db, table, rec, &path);
            let journal_owner = (path.len() == 1).then_some((table.name, rec));
            out.insert(name, self.value(db, field, &stored, journal_owner));
        }
        out
    }

    fn value(&self, db: &Db, field: &Field, stored: &str, owner: Option<(&str, &Record)>) -> Value {
        let stored_text = if field.kind == Kind::Journal { "" } else { stored };
        let link = match field.kind {
            Kind::Reference { link_table, .. } if !stored.is_empty() && !self.exclude_link => {
                Some(format!("{}/api/now/table/{link_table}/{stored}", self.base))
            }
            _ => None,
        };
        if self.mode == DisplayMode::Stored {
            return match link {
                Some(link) => json!({ "link": link, "value": stored }),
                None => Value::String(stored_text.to_string()),
            };
        }
        let display = match (field.kind, owner) {
            (Kind::Journal, Some((table, rec))) => {
                let id = rec.get("sys_id").map(String::as_str).unwrap_or_default();
                journal::display(db, table, id, field.name, &self.locale)
            }
            _ => display_value(db, field, stored, &self.locale, self.extra_states, 0),
        };
        match (self.mode, link) {
            (DisplayMode::Display, Some(link)) => json!({ "display_value": display, "link": link }),
            (DisplayMode::Display, None) => Value::String(display),
            (_, Some(link)) => {
                json!({ "display_value": display, "link": link, "value": stored_text })
            }
            (_, None) => json!({ "display_value": display, "value": stored_text }),
        }
    }
}

/// The display value of a stored value.
pub fn display_value(
    db: &Db,
    field: &Field,
    stored: &str,
    locale: &Locale,
    extra_states: &[ExtraState],
    depth: u8,
) -> String {
    match field.kind {
        Kind::Reference { table, .. } => {
            let Some(target) = schema::table(table) else { return String::new() };
            let Some(rec) = db.get(target.name, stored) else { return String::new() };
            let Some(shown) = target.field(target.display) else { return String::new() };
            let value = rec.get(shown.name).map(String::as_str).unwrap_or_default();
            if depth > 2 {
                return value.to_string();
            }
            display_value(db, shown, value, locale, extra_states, depth + 1)
        }
        Kind::Choice(choices) => {
            if choices == schema::CHANGE_STATES
                && let Some(extra) = extra_states.iter().find(|s| s.value == stored)
            {
                return extra.label.clone();
            }
            schema::label(choices, stored).to_string()
        }
        Kind::DateTime => locale.show(stored),
        Kind::Journal => String::new(),
        Kind::Text | Kind::Boolean | Kind::Integer => stored.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locale_shows_and_reads_date_times_in_its_zone() {
        let locale = Locale::of(Some("+02:00"), Some("%d.%m.%Y %H:%M"));
        assert_eq!(locale.show("2026-03-01 22:30:00"), "02.03.2026 00:30");
        assert_eq!(locale.parse_input("02.03.2026 00:30").as_deref(), Some("2026-03-01 22:30:00"));
        assert_eq!(Locale::default().show("2026-03-01 22:30:00"), "2026-03-01 22:30:00");
    }
}
