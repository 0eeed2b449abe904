//! The dictionary of the emulated tables: which fields exist, their kind (reference, choice,
//! journal, date-time…), their choice labels and their length.
//!
//! The Table API's quiet behaviours all hang off this dictionary: an unknown field in
//! `sysparm_fields` or in a write is dropped, an unknown field in `sysparm_query` drops the term,
//! references render as `{"link","value"}`, choice fields render their label in display mode.

/// The kind of a field, as the instance's dictionary (`sys_dictionary`) would type it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    Text,
    /// A reference: the stored value is a sys_id of `table`; links point at `link_table`
    /// (a reference to `task` links to `/table/task/…` even when the row is a change_request).
    Reference {
        /// The table the sys_id is looked up in.
        table: &'static str,
        /// The table named in the `link` URL.
        link_table: &'static str,
    },
    /// A choice list: stored value plus label.
    Choice(&'static [(&'static str, &'static str)]),
    /// A journal field (`work_notes`, `comments`): writes append a `sys_journal_field` row.
    Journal,
    /// `YYYY-MM-DD HH:MM:SS`, UTC when stored.
    DateTime,
    /// `"true"` / `"false"`.
    Boolean,
    /// An integer, stored as its decimal string.
    Integer,
}

/// One field of a table.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Column name.
    pub name: &'static str,
    /// Its kind.
    pub kind: Kind,
    /// `max_length` in the dictionary. Only lengths of 255 and less are enforced, by truncation:
    /// those columns are `varchar(n)` in the database, while longer ones are `mediumtext` and the
    /// platform does not enforce `max_length` (ServiceNow KB0685779).
    pub max_len: Option<usize>,
    /// Whether an API write may set it (read-only fields are silently skipped).
    pub writable: bool,
}

/// Which Table API verbs a table accepts from the integration user.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    /// POST.
    pub create: bool,
    /// PATCH and PUT.
    pub update: bool,
    /// DELETE.
    pub delete: bool,
}

/// One emulated table.
#[derive(Debug)]
pub struct Table {
    /// Table name (`change_request`).
    pub name: &'static str,
    /// Its own fields; the `sys_*` fields common to every table come from [`SYS_FIELDS`].
    pub fields: &'static [Field],
    /// The field whose value is the record's display value (`number`, `name`…).
    pub display: &'static str,
    /// What the integration user may do.
    pub access: Access,
}

impl Table {
    /// Looks a field up by name, the common `sys_*` fields included.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        SYS_FIELDS.iter().chain(self.fields.iter()).find(|f| f.name == name)
    }

    /// All fields in rendering order: `sys_id` and the other `sys_*` fields, then the table's.
    pub fn all_fields(&self) -> impl Iterator<Item = &'static Field> {
        SYS_FIELDS.iter().chain(self.fields.iter())
    }
}

const fn text(name: &'static str) -> Field {
    Field { name, kind: Kind::Text, max_len: None, writable: true }
}

const fn sized(name: &'static str, max_len: usize) -> Field {
    Field { name, kind: Kind::Text, max_len: Some(max_len), writable: true }
}

const fn read_only(name: &'static str, kind: Kind) -> Field {
    Field { name, kind, max_len: None, writable: false }
}

const fn of(name: &'static str, kind: Kind) -> Field {
    Field { name, kind, max_len: None, writable: true }
}

const fn reference(name: &'static str, table: &'static str) -> Field {
    of(name, Kind::Reference { table, link_table: table })
}

/// Fields every table has.
pub const SYS_FIELDS: &[Field] = &[
    read_only("sys_id", Kind::Text),
    read_only("sys_created_on", Kind::DateTime),
    read_only("sys_created_by", Kind::Text),
    read_only("sys_updated_on", Kind::DateTime),
    read_only("sys_updated_by", Kind::Text),
    read_only("sys_mod_count", Kind::Integer),
];

/// `change_request.state` in the base system (SND c_ChangeStateModel).
pub const CHANGE_STATES: &[(&str, &str)] = &[
    ("-5", "New"),
    ("-4", "Assess"),
    ("-3", "Authorize"),
    ("-2", "Scheduled"),
    ("-1", "Implement"),
    ("0", "Review"),
    ("3", "Closed"),
    ("4", "Canceled"),
];

/// `approval` on a task and `state` on an approver row.
pub const APPROVAL_STATES: &[(&str, &str)] = &[
    ("not requested", "Not Yet Requested"),
    ("requested", "Requested"),
    ("approved", "Approved"),
    ("rejected", "Rejected"),
    ("cancelled", "Cancelled"),
    ("not_required", "No Longer Required"),
    ("skipped", "Skipped"),
    ("duplicate", "Duplicate"),
];

const CHANGE_TYPES: &[(&str, &str)] =
    &[("normal", "Normal"), ("standard", "Standard"), ("emergency", "Emergency")];

const CLOSE_CODES: &[(&str, &str)] = &[
    ("successful", "Successful"),
    ("successful_issues", "Successful with issues"),
    ("unsuccessful", "Unsuccessful"),
];

const RISKS: &[(&str, &str)] = &[("1", "High"), ("2", "Moderate"), ("3", "Low"), ("4", "None")];

const IMPACTS: &[(&str, &str)] = &[("1", "1 - High"), ("2", "2 - Medium"), ("3", "3 - Low")];

const PRIORITIES: &[(&str, &str)] = &[
    ("1", "1 - Critical"),
    ("2", "2 - High"),
    ("3", "3 - Moderate"),
    ("4", "4 - Low"),
    ("5", "5 - Planning"),
];

const INCIDENT_STATES: &[(&str, &str)] = &[
    ("1", "New"),
    ("2", "In Progress"),
    ("3", "On Hold"),
    ("6", "Resolved"),
    ("7", "Closed"),
    ("8", "Canceled"),
];

const UPON_REJECT: &[(&str, &str)] =
    &[("cancel", "Cancel all future Tasks"), ("goto", "Go to a previous Task")];

const TASK_LINK: Kind = Kind::Reference { table: "change_request", link_table: "task" };

const CHANGE_REQUEST: Table = Table {
    name: "change_request",
    display: "number",
    access: Access { create: true, update: true, delete: true },
    fields: &[
        read_only("number", Kind::Text),
        of("state", Kind::Choice(CHANGE_STATES)),
        read_only("approval", Kind::Choice(APPROVAL_STATES)),
        read_only("active", Kind::Boolean),
        of("type", Kind::Choice(CHANGE_TYPES)),
        text("category"),
        sized("short_description", 160),
        sized("description", 4000),
        sized("justification", 4000),
        sized("implementation_plan", 4000),
        sized("backout_plan", 4000),
        sized("test_plan", 4000),
        sized("risk_impact_analysis", 4000),
        of("risk", Kind::Choice(RISKS)),
        of("impact", Kind::Choice(IMPACTS)),
        of("urgency", Kind::Choice(IMPACTS)),
        of("priority", Kind::Choice(PRIORITIES)),
        reference("assignment_group", "sys_user_group"),
        reference("assigned_to", "sys_user"),
        reference("requested_by", "sys_user"),
        reference("opened_by", "sys_user"),
        read_only("opened_at", Kind::DateTime),
        text("cmdb_ci"),
        of("start_date", Kind::DateTime),
        of("end_date", Kind::DateTime),
        of("work_start", Kind::DateTime),
        of("work_end", Kind::DateTime),
        sized("correlation_id", 100),
        sized("correlation_display", 100),
        of("work_notes", Kind::Journal),
        of("comments", Kind::Journal),
        of("close_code", Kind::Choice(CLOSE_CODES)),
        sized("close_notes", 4000),
        of("on_hold", Kind::Boolean),
        sized("on_hold_reason", 4000),
        of("cab_required", Kind::Boolean),
        of("cab_date", Kind::DateTime),
        of("upon_reject", Kind::Choice(UPON_REJECT)),
    ],
};

const INCIDENT: Table = Table {
    name: "incident",
    display: "number",
    access: Access { create: true, update: false, delete: false },
    fields: &[
        read_only("number", Kind::Text),
        of("state", Kind::Choice(INCIDENT_STATES)),
        read_only("active", Kind::Boolean),
        sized("short_description", 160),
        sized("description", 4000),
        of("urgency", Kind::Choice(IMPACTS)),
        of("impact", Kind::Choice(IMPACTS)),
        of("priority", Kind::Choice(PRIORITIES)),
        text("category"),
        reference("assignment_group", "sys_user_group"),
        reference("caller_id", "sys_user"),
        reference("opened_by", "sys_user"),
        read_only("opened_at", Kind::DateTime),
        sized("correlation_id", 100),
        sized("correlation_display", 100),
        of("work_notes", Kind::Journal),
        of("comments", Kind::Journal),
    ],
};

const SYSAPPROVAL_APPROVER: Table = Table {
    name: "sysapproval_approver",
    display: "approver",
    access: Access { create: false, update: true, delete: false },
    fields: &[
        of("state", Kind::Choice(APPROVAL_STATES)),
        Field {
            name: "approver",
            kind: Kind::Reference { table: "sys_user", link_table: "sys_user" },
            max_len: None,
            writable: false,
        },
        Field { name: "sysapproval", kind: TASK_LINK, max_len: None, writable: false },
        read_only("document_id", Kind::Text),
        read_only("source_table", Kind::Text),
        Field {
            name: "group",
            kind: Kind::Reference { table: "sysapproval_group", link_table: "sysapproval_group" },
            max_len: None,
            writable: false,
        },
        of("comments", Kind::Journal),
        read_only("due_date", Kind::DateTime),
    ],
};

const SYSAPPROVAL_GROUP: Table = Table {
    name: "sysapproval_group",
    display: "assignment_group",
    access: Access { create: false, update: false, delete: false },
    fields: &[
        Field { name: "parent", kind: TASK_LINK, max_len: None, writable: false },
        Field {
            name: "assignment_group",
            kind: Kind::Reference { table: "sys_user_group", link_table: "sys_user_group" },
            max_len: None,
            writable: false,
        },
        read_only("approval", Kind::Choice(APPROVAL_STATES)),
    ],
};

const SYS_JOURNAL_FIELD: Table = Table {
    name: "sys_journal_field",
    display: "value",
    access: Access { create: false, update: false, delete: false },
    fields: &[
        read_only("name", Kind::Text),
        read_only("element", Kind::Text),
        read_only("element_id", Kind::Text),
        read_only("value", Kind::Text),
    ],
};

const SYS_USER: Table = Table {
    name: "sys_user",
    display: "name",
    access: Access { create: false, update: false, delete: false },
    fields: &[
        read_only("user_name", Kind::Text),
        read_only("name", Kind::Text),
        read_only("first_name", Kind::Text),
        read_only("last_name", Kind::Text),
        read_only("email", Kind::Text),
        read_only("active", Kind::Boolean),
        read_only("time_zone", Kind::Text),
    ],
};

const SYS_USER_GROUP: Table = Table {
    name: "sys_user_group",
    display: "name",
    access: Access { create: false, update: false, delete: false },
    fields: &[
        read_only("name", Kind::Text),
        read_only("description", Kind::Text),
        read_only("email", Kind::Text),
        read_only("active", Kind::Boolean),
        Field {
            name: "manager",
            kind: Kind::Reference { table: "sys_user", link_table: "sys_user" },
            max_len: None,
            writable: false,
        },
    ],
};

const SYS_USER_GRMEMBER: Table = Table {
    name: "sys_user_grmember",
    display: "user",
    access: Access { create: false, update: false, delete: false },
    fields: &[
        Field {
            name: "user",
            kind: Kind::Reference { table: "sys_user", link_table: "sys_user" },
            max_len: None,
            writable: false,
        },
        Field {
            name: "group",
            kind: Kind::Reference { table: "sys_user_group", link_table: "sys_user_group" },
            max_len: None,
            writable: false,
        },
    ],
};

const SYS_CHOICE: Table = Table {
    name: "sys_choice",
    display: "label",
    access: Access { create: false, update: false, delete: false },
    fields: &[
        read_only("name", Kind::Text),
        read_only("element", Kind::Text),
        read_only("value", Kind::Text),
        read_only("label", Kind::Text),
        read_only("language", Kind::Text),
        read_only("sequence", Kind::Integer),
        read_only("inactive", Kind::Boolean),
    ],
};

/// Every emulated table.
pub const TABLES: &[Table] = &[
    CHANGE_REQUEST,
    INCIDENT,
    SYSAPPROVAL_APPROVER,
    SYSAPPROVAL_GROUP,
    SYS_JOURNAL_FIELD,
    SYS_USER,
    SYS_USER_GROUP,
    SYS_USER_GRMEMBER,
    SYS_CHOICE,
];

/// The table called `name`, if emulated.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

/// The label of a choice value; an unknown value is its own label, as on an instance whose
/// `sys_choice` lacks it.
pub fn label<'a>(choices: &'a [(&'a str, &'a str)], value: &'a str) -> &'a str {
    choices.iter().find(|(v, _)| *v == value).map(|(_, l)| *l).unwrap_or(value)
}

/// The stored value for a choice label (`sysparm_input_display_value=true`).
pub fn value_of_label<'a>(choices: &'a [(&'a str, &'a str)], label: &'a str) -> Option<&'a str> {
    choices.iter().find(|(_, l)| *l == label).map(|(v, _)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_points_at_an_emulated_table() {
        for t in TABLES {
            for f in t.all_fields() {
                if let Kind::Reference { table: target, .. } = f.kind {
                    assert!(table(target).is_some(), "{}.{} → {target}", t.name, f.name);
                }
            }
            assert!(t.field(t.display).is_some(), "{} display {}", t.name, t.display);
        }
    }
}
