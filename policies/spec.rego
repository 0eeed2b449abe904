# Spec-only checks (`cabgate lint`): credentials written inline, and fields that contradict each
# other.
package cabgate.rules.spec

# Keys that name an environment variable hold a name, never a secret.
env_name(key) if endswith(key, "Env")

patterns := {
	"a Bytebase service key": `bbs_[A-Za-z0-9]{16,}`,
	"a JSON Web Token": `eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*`,
	"a password assignment": `(?i)(password|passwd|pwd|secret|token|api[_-]?key)\s*[:=]\s*[^\s{]`,
	"credentials in a URL": `[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@`,
	"a private key": `-----BEGIN [A-Z ]*PRIVATE KEY-----`,
	"an AWS access key": `AKIA[0-9A-Z]{16}`,
}

secret_key := `(?i)^(password|passwd|secret|token|api[_-]?key|private[_-]?key|client[_-]?secret)$`

remediation := "move the value to an environment variable and name it with the matching `…Env` field"

findings contains f if {
	some s in input.index.strings
	not env_name(s.key)
	some what, pattern in patterns
	regex.match(pattern, s.value)
	f := {
		"code": "spec/secret-inline",
		"message": concat("", ["the value at ", s.path, " looks like ", what]),
		"path": s.path,
	}
}

# A key pasted where the name of its variable belongs (`serviceKeyEnv: bbs_…`): both are valid
# variable names, so only the value's form tells them apart.
pasted_keys := {
	"a Bytebase service key": `^bbs_[A-Za-z0-9]{16,}$`,
	"an AWS access key": `^AKIA[0-9A-Z]{16}$`,
}

findings contains f if {
	some s in input.index.strings
	env_name(s.key)
	some what, pattern in pasted_keys
	regex.match(pattern, s.value)
	f := {
		"code": "spec/secret-inline",
		"message": concat("", [
			"the value at ", s.path, " looks like ", what,
			" itself, not the name of the environment variable that holds it",
		]),
		"path": s.path,
	}
}

matches_a_pattern(value) if {
	some pattern in patterns
	regex.match(pattern, value)
}

# A free-form map (the CHG template, action arguments) with a key that names a secret.
findings contains f if {
	some s in input.index.strings
	regex.match(secret_key, s.key)
	s.value != ""
	f := {
		"code": "spec/secret-inline",
		"message": concat("", ["the value at ", s.path, " is named like a secret"]),
		"path": s.path,
	}
}

# A long, random-looking token with letters and digits.
findings contains f if {
	some s in input.index.strings
	not env_name(s.key)
	count(s.value) >= 24
	regex.match(`^[A-Za-z0-9+/=_-]+$`, s.value)
	regex.match(`[0-9]`, s.value)
	regex.match(`[A-Za-z]`, s.value)
	s.entropy >= 4
	not matches_a_pattern(s.value)
	f := {
		"code": "spec/secret-inline",
		"message": concat("", ["the value at ", s.path, " looks like a random key or token"]),
		"path": s.path,
	}
}

# The bridge must itself be allowed to run tasks.
findings contains f if {
	principal := concat("", ["serviceAccount:", input.spec.bytebase.serviceAccount])
	not principal in input.spec.lockdown.allow
	f := {
		"code": "spec/inconsistent",
		"message": concat("", [
			principal,
			" (bytebase.serviceAccount) is not in lockdown.allow, so the bridge could not run tasks",
			" without being reported",
		]),
		"path": "/lockdown/allow",
		"remediation": concat("", ["add ", principal, " to lockdown.allow"]),
	}
}

findings contains f if {
	some principal in input.spec.lockdown.allow
	principal == "allUsers"
	f := {
		"code": "spec/inconsistent",
		"message": "lockdown.allow lists allUsers: every user may run tasks, so nothing is locked down",
		"path": "/lockdown/allow",
	}
}

findings contains f if {
	some id, env in input.spec.environments
	env.governed == true
	env.rollout.automatic == true
	f := {
		"code": "spec/inconsistent",
		"message": concat("", [
			"environment ", id,
			" is governed but rolls out automatically: tasks would run before any CAB decision",
		]),
		"resource": concat("", ["environments/", id]),
		"path": concat("", ["/environments/", id, "/rollout/automatic"]),
		"remediation": "set rollout.automatic to false in a governed environment",
	}
}

findings contains f if {
	some id, env in input.spec.environments
	env.governed == true
	count(env.rollout.roles) > 0
	f := {
		"code": "spec/inconsistent",
		"message": concat("", [
			"environment ", id, " is governed but its rollout policy adds runners (",
			concat(", ", env.rollout.roles), ") beside the bridge",
		]),
		"resource": concat("", ["environments/", id]),
		"path": concat("", ["/environments/", id, "/rollout/roles"]),
		"remediation": "leave rollout.roles empty in a governed environment; the bridge runs tasks",
	}
}
