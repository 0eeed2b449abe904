# The workspace approval setting (`cabgate check`), matched as Bytebase matches it: rules with the
# issue's source first, in order; then source-less ("fallback") rules, in order; first match wins
# per phase; an empty condition never matches; no match means SKIPPED.
#
# NOTE: conditions other than "true" and "" are not evaluated (which issues they match depends on
# databases, statements and risk levels no snapshot holds), so any such rule is taken to match
# some issue: a weaker flow behind it is reported even if no real issue would reach it.
package cabgate.rules.approval

setting := "settings/WORKSPACE_APPROVAL"

rules := input.live.approvalRules

required := input.spec.approval.catchAll.roles

fallback(rule) if not is_string(rule.source)

fallback(rule) if rule.source in {"", "SOURCE_UNSPECIFIED"}

condition(rule) := trim_space(rule.condition.expression) if {
	is_string(rule.condition.expression)
} else := ""

flow(rule) := rule.template.flow.roles if is_array(rule.template.flow.roles) else := []

# Bytebase matches the literal "true" at once and evaluates any other expression as CEL, so
# "true" with CEL whitespace (blank, tab, newline, carriage return, form feed) around it matches
# every issue too. Other blanks (a no-break space) are not CEL: such a rule matches nothing.
catch_all(rule) if {
	fallback(rule)
	is_string(rule.condition.expression)
	trim(rule.condition.expression, " \t\n\r\f") == "true"
}

# Positions of catch-all rules; the first one is the one that matches.
catch_alls := [i | some i, rule in rules; catch_all(rule)]

first_catch_all := min(catch_alls) if count(catch_alls) > 0

# A flow that lacks one of the roles the spec's catch-all requires.
weaker(rule) if {
	some role in required
	not role in flow(rule)
}

# A rule Bytebase can pick: a non-empty condition, and for a fallback rule a place before the
# first catch-all (fallback rules after it are never reached).
reachable(i, rule) if {
	condition(rule) != ""
	not fallback(rule)
}

reachable(i, rule) if {
	condition(rule) != ""
	fallback(rule)
	not first_catch_all < i
}

empty_tolerated(rule) if {
	count(flow(rule)) == 0
	input.spec.approval.allowEmptyFlows == true
}

label(i, rule) := concat("", ["rule ", format_int(i + 1, 10), " (", title(rule), ")"])

title(rule) := rule.template.title if {
	is_string(rule.template.title)
	rule.template.title != ""
} else := "untitled"

source(rule) := "no source" if fallback(rule) else := rule.source

findings contains f if {
	is_object(input.live)
	input.live.approvalFeature == false
	f := {
		"code": "approval/feature-missing",
		"message": "the Bytebase licence lacks the approval workflow: every issue is SKIPPED, whatever the rules say",
		"resource": input.live.workspace,
		"path": "/approval",
	}
}

findings contains f if {
	is_object(input.live)
	count(catch_alls) == 0
	f := {
		"code": "approval/no-catch-all",
		"message": "no approval rule has no source and the condition `true`: an issue no rule matches is SKIPPED",
		"resource": setting,
		"path": "/approval/catchAll",
	}
}

findings contains f if {
	i := first_catch_all
	rule := rules[i]
	flow(rule) != required
	f := {
		"code": "approval/catch-all-flow",
		"message": concat("", [
			"the catch-all ", label(i, rule), " routes to [", concat(", ", flow(rule)),
			"]; the spec requires [", concat(", ", required), "]",
		]),
		"resource": setting,
		"via": [label(i, rule)],
		"path": "/approval/catchAll/roles",
	}
}

findings contains f if {
	is_object(input.live)
	some i, rule in rules
	count(flow(rule)) == 0
	reachable(i, rule)
	not input.spec.approval.allowEmptyFlows == true
	f := {
		"code": "approval/empty-flow",
		"message": concat("", [
			label(i, rule), " (", source(rule), ", when ", condition(rule),
			") has no approval step: the changes it matches need no approval",
		]),
		"resource": setting,
		"via": [label(i, rule)],
		"path": "/approval/allowEmptyFlows",
	}
}

# A source-specific rule wins before every fallback rule, wherever it is listed.
findings contains f if {
	is_object(input.live)
	some i, rule in rules
	not fallback(rule)
	condition(rule) != ""
	weaker(rule)
	not empty_tolerated(rule)
	f := shadow(i, rule)
}

# A fallback rule listed before the catch-all wins for the projects its condition matches.
findings contains f if {
	some i, rule in rules
	i < first_catch_all
	fallback(rule)
	condition(rule) != ""
	weaker(rule)
	not empty_tolerated(rule)
	f := shadow(i, rule)
}

shadow(i, rule) := {
	"code": "approval/shadowed-catch-all",
	"message": concat("", [
		label(i, rule), " (", source(rule), ", when ", condition(rule), ") matches before the catch-all",
		" and routes to [", concat(", ", flow(rule)), "], without all of [", concat(", ", required), "]",
	]),
	"resource": setting,
	"via": [label(i, rule)],
	"path": "/approval/catchAll/roles",
}
