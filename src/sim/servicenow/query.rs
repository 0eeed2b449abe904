//! Encoded queries (`sysparm_query`): `<field><op><value>` terms joined by `^` (AND), `^OR`
//! (OR with the previous term, binding tighter than AND) and `^NQ` (a new query ORed with the
//! previous ones), plus `ORDERBY<f>` / `ORDERBYDESC<f>` terms.
//!
//! The documented pitfall is modelled on purpose: a term whose field does not exist (a typo, a
//! field of another table, a wrong case) or that has no operator is dropped, and the rest of the
//! query runs, so a query made only of invalid terms matches every row — unless the instance sets
//! `glide.invalid_query.returns_no_rows`, then such a query matches nothing.
//!
//! Names, operators and values are case-sensitive. Choice fields compare stored values.
//! NOTE: change-tracking operators (`VALCHANGES`, `CHANGESTO`…), `javascript:` values, date
//! macros and `GROUPBY` are not emulated: such terms count as invalid and are dropped.

use std::cmp::Ordering;

use super::records::{Db, Record};
use super::schema::{self, Field, Kind, Table};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `LIKE`: contains.
    Like,
    /// `NOT LIKE`
    NotLike,
    /// `STARTSWITH`
    StartsWith,
    /// `ENDSWITH`
    EndsWith,
    /// `IN`: one of a comma list.
    In,
    /// `NOT IN`
    NotIn,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
    /// `ISEMPTY`
    IsEmpty,
    /// `ISNOTEMPTY`
    IsNotEmpty,
}

/// Operators by their spelling, longest first where one is a prefix of another.
const OPS: &[(&str, Op)] = &[
    ("ISNOTEMPTY", Op::IsNotEmpty),
    ("ISEMPTY", Op::IsEmpty),
    ("STARTSWITH", Op::StartsWith),
    ("ENDSWITH", Op::EndsWith),
    ("NOT LIKE", Op::NotLike),
    ("NOTLIKE", Op::NotLike),
    ("LIKE", Op::Like),
    ("NOT IN", Op::NotIn),
    ("NOTIN", Op::NotIn),
    ("IN", Op::In),
    ("!=", Op::Ne),
    ("<=", Op::Le),
    (">=", Op::Ge),
    ("=", Op::Eq),
    ("<", Op::Lt),
    (">", Op::Gt),
];

/// One valid condition.
#[derive(Debug, Clone)]
pub struct Term {
    /// The field, dot-walked through references (`approver.user_name`).
    pub path: Vec<String>,
    /// The operator.
    pub op: Op,
    /// The value as written.
    pub value: String,
    /// How values of the field compare.
    pub order: Collation,
}

/// How a field's values compare in `<`, `>` and `ORDERBY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collation {
    /// Integers and choice lists with numeric values (`state`): numerically, numbers first.
    Numeric,
    /// Everything else, stored date-times included: as strings.
    Text,
}

impl Collation {
    fn of(field: &Field) -> Collation {
        match field.kind {
            Kind::Integer | Kind::Choice(_) => Collation::Numeric,
            _ => Collation::Text,
        }
    }

    /// Compares two stored values. A total order: under `Numeric`, numbers sort before
    /// anything else and compare by value; the rest compare as strings.
    pub fn compare(self, a: &str, b: &str) -> Ordering {
        if self == Collation::Text {
            return a.cmp(b);
        }
        match (a.parse::<i64>(), b.parse::<i64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            (Err(_), Err(_)) => a.cmp(b),
        }
    }
}

/// A parsed query: an OR of groups (`^NQ`), each an AND of OR-clauses.
#[derive(Debug, Clone, Default)]
pub struct Query {
    groups: Vec<Vec<Vec<Term>>>,
    order: Vec<(Vec<String>, bool, Collation)>,
    /// Terms that were dropped because they were invalid.
    pub dropped: Vec<String>,
}

/// The last field of a dot-walked path, if every step exists (each but the last a reference).
pub fn field_of_path(table: &Table, path: &[String]) -> Option<&'static Field> {
    let (last, walk) = path.split_last()?;
    let mut current = table;
    for step in walk {
        match current.field(step)?.kind {
            Kind::Reference { table: target, .. } => current = schema::table(target)?,
            _ => return None,
        }
    }
    current.field(last)
}

/// The stored value at a dot-walked path; `""` where a reference is empty or dangling.
pub fn value_at(db: &Db, table: &Table, rec: &Record, path: &[String]) -> String {
    let Some((first, rest)) = path.split_first() else { return String::new() };
    let value = rec.get(first).cloned().unwrap_or_default();
    if rest.is_empty() {
        return value;
    }
    let Some(Kind::Reference { table: target, .. }) = table.field(first).map(|f| f.kind) else {
        return String::new();
    };
    let Some(target) = schema::table(target) else { return String::new() };
    match db.get(target.name, &value) {
        Some(next) => value_at(db, target, next, rest),
        None => String::new(),
    }
}

/// Splits a field path at its dots.
pub fn split_path(name: &str) -> Vec<String> {
    name.split('.').map(str::to_string).collect()
}

fn parse_term(table: &Table, text: &str) -> Option<Term> {
    let name_len = text
        .bytes()
        .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'.')
        .count();
    let (name, rest) = text.split_at(name_len);
    let (spelling, op) = OPS.iter().find(|(spelling, _)| rest.starts_with(spelling))?;
    let path = split_path(name);
    let field = field_of_path(table, &path)?;
    let value = match op {
        Op::IsEmpty | Op::IsNotEmpty => String::new(),
        _ => rest[spelling.len()..].to_string(),
    };
    Some(Term { path, op: *op, value, order: Collation::of(field) })
}

/// Parses an encoded query against a table's dictionary.
pub fn parse(table: &Table, encoded: &str) -> Query {
    let mut query = Query::default();
    for group_text in encoded.split("^NQ") {
        let mut group: Vec<Vec<Term>> = Vec::new();
        for raw in group_text.split('^') {
            if raw.is_empty() || raw == "EQ" {
                continue;
            }
            if let Some(field) = raw.strip_prefix("ORDERBYDESC") {
                order_term(table, &mut query, field, true, raw);
                continue;
            }
            if let Some(field) = raw.strip_prefix("ORDERBY") {
                order_term(table, &mut query, field, false, raw);
                continue;
            }
            let (is_or, text) = match raw.strip_prefix("OR") {
                Some(text) => (true, text),
                None => (false, raw),
            };
            match parse_term(table, text) {
                Some(term) => match group.last_mut() {
                    Some(clause) if is_or => clause.push(term),
                    _ => group.push(vec![term]),
                },
                None => query.dropped.push(raw.to_string()),
            }
        }
        query.groups.push(group);
    }
    query
}

fn order_term(table: &Table, query: &mut Query, field: &str, desc: bool, raw: &str) {
    let path = split_path(field);
    if let Some(field) = field_of_path(table, &path) {
        query.order.push((path, desc, Collation::of(field)));
    } else {
        query.dropped.push(raw.to_string());
    }
}

fn term_matches(term: &Term, actual: &str) -> bool {
    let v = term.value.as_str();
    match term.op {
        Op::Eq => actual == v,
        Op::Ne => actual != v,
        Op::Like => actual.contains(v),
        Op::NotLike => !actual.contains(v),
        Op::StartsWith => actual.starts_with(v),
        Op::EndsWith => actual.ends_with(v),
        Op::In => v.split(',').any(|item| item == actual),
        Op::NotIn => !v.split(',').any(|item| item == actual),
        Op::Lt => term.order.compare(actual, v) == Ordering::Less,
        Op::Gt => term.order.compare(actual, v) == Ordering::Greater,
        Op::Le => term.order.compare(actual, v) != Ordering::Greater,
        Op::Ge => term.order.compare(actual, v) != Ordering::Less,
        Op::IsEmpty => actual.is_empty(),
        Op::IsNotEmpty => !actual.is_empty(),
    }
}

impl Query {
    /// Whether the query has any condition left after dropping invalid terms.
    pub fn has_conditions(&self) -> bool {
        self.groups.iter().any(|g| !g.is_empty())
    }

    /// Whether a row matches. `no_rows_on_invalid` is `glide.invalid_query.returns_no_rows`.
    pub fn matches(&self, db: &Db, table: &Table, rec: &Record, no_rows_on_invalid: bool) -> bool {
        if no_rows_on_invalid && !self.dropped.is_empty() {
            return false;
        }
        if !self.has_conditions() {
            return true;
        }
        self.groups.iter().filter(|g| !g.is_empty()).any(|group| {
            group.iter().all(|clause| {
                clause.iter().any(|term| term_matches(term, &value_at(db, table, rec, &term.path)))
            })
        })
    }

    /// Sorts rows by the `ORDERBY` terms (stable: ties keep insertion order).
    pub fn sort(&self, db: &Db, table: &Table, rows: &mut [&Record]) {
        if self.order.is_empty() {
            return;
        }
        rows.sort_by(|a, b| {
            for (path, desc, collation) in &self.order {
                let (x, y) = (value_at(db, table, a, path), value_at(db, table, b, path));
                let ord = collation.compare(&x, &y);
                let ord = if *desc { ord.reverse() } else { ord };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chg() -> &'static Table {
        schema::table("change_request").unwrap()
    }

    #[test]
    fn or_binds_tighter_than_and() {
        let q = parse(chg(), "active=true^state=-5^ORstate=-4^ORDERBYnumber");
        assert_eq!(q.groups[0].len(), 2);
        assert_eq!(q.groups[0][1].len(), 2);
        assert_eq!(q.order.len(), 1);
        assert!(q.dropped.is_empty());
    }

    #[test]
    fn unknown_fields_wrong_case_and_missing_operators_are_dropped() {
        let q = parse(chg(), "nmber=CHG1^State=-5^null^correlation_idSTARTSWITHbb:");
        assert_eq!(q.dropped, vec!["nmber=CHG1", "State=-5", "null"]);
        assert_eq!(q.groups[0].len(), 1);
    }

    #[test]
    fn operators_are_recognised() {
        let q = parse(chg(), "short_descriptionNOT LIKEx^numberINa,b^stateISNOTEMPTY^state>=-2");
        let ops: Vec<Op> = q.groups[0].iter().map(|c| c[0].op).collect();
        assert_eq!(ops, vec![Op::NotLike, Op::In, Op::IsNotEmpty, Op::Ge]);
    }

    #[test]
    fn dot_walks_follow_references() {
        let approver = schema::table("sysapproval_approver").unwrap();
        assert!(parse(approver, "approver.user_name=alice").dropped.is_empty());
        assert_eq!(parse(approver, "approver.nope=alice").dropped.len(), 1);
        assert_eq!(parse(approver, "state.x=alice").dropped.len(), 1);
    }

    #[test]
    fn numeric_fields_compare_as_numbers_and_the_rest_as_text() {
        assert_eq!(Collation::Numeric.compare("-5", "-2"), Ordering::Less);
        assert_eq!(Collation::Numeric.compare("10", "9"), Ordering::Greater);
        assert_eq!(Collation::Numeric.compare("9", "x"), Ordering::Less);
        assert_eq!(Collation::Text.compare("10", "9"), Ordering::Less);
        let (a, b) = ("2026-01-02 00:00:00", "2026-01-10 00:00:00");
        assert_eq!(Collation::Text.compare(a, b), Ordering::Less);
    }
}
