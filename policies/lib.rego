# Shared facts of the built-in policies: who holds which role, however it is granted.
#
# Not a rule package (it is outside `cabgate.rules.`), so it yields no findings itself; the
# lockdown and rollout packages import it. User policies may import it too.
package cabgate.lib

# The principals `lockdown.allow` names (`user:…`, `serviceAccount:…`, `group:…`).
allowed contains principal if some principal in input.spec.lockdown.allow

# Every principal outside `lockdown.allow` that holds one of `roles` (a map role → anything), as a
# set of `{principal, member, role, resource, via}`. The grants come from the index
# (`input.index.grants`, computed in Rust): workspace bindings and the bindings of governed
# projects, expired conditions dropped, groups expanded with the group in `via`. A grant is left
# out when its principal is allowed or when the binding names an allowed group (`member`).
#
# A function, not a rule: importing this package must stay cheap, and each caller computes the
# holders it needs once (`holders := lib.holders_of(…)`), in one pass over the grants of `roles`.
holders_of(roles) := {grant |
	some role, _ in roles
	some grant in input.index.grants[role]
	not allowed[grant.member]
	not allowed[grant.principal]
}

# "on" / "off" for a boolean setting in a message.
on_off(true) := "on"

on_off(false) := "off"
