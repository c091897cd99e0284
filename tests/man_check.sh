#!/usr/bin/env bash
# docs.man: keep the manual pages and the bash completion honest.
#
#   - every page formats without a groff warning (groff -man -ww), and no
#     rendered line is wider than 80 columns;
#   - .TH carries the version in meson.build; ASCII only; no trailing blanks;
#   - drdns.conf.5: one .SS per group of src/conf/conf.c (root_keys), one .TP
#     item per key of each *_keys[] table in its group's .SS, nothing more;
#     each item states the default from set_defaults() ("Default: X") and the
#     range of its get_int/get_num/get_port call ("LO to HI", or "More than
#     LO, at most HI");
#   - drdnsctl.8: every command of src/ctl/commands.c is a COMMANDS item and
#     has a SYNOPSIS entry, both naming each option of its argument synopsis;
#     every long and short option of src/cli/main.c is documented, the global
#     ones under OPTIONS; every exit code of enum drdns_exit (ctl.h) is an
#     EXIT STATUS item;
#   - drdnsd.8: every option of src/daemon/main.c under OPTIONS; every
#     watchdog state, alert, hook variable and metric the code emits;
#   - completions/drdnsctl, run in a clean bash: completes every command,
#     each command's options exactly, and the global options.
#
# Needs bash, awk, sed, grep and groff (Debian: groff-base).  No network.
set -uo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=${DRDNS_SRC:-$(cd "$here/.." && pwd)}
man=$src/man
completion=$src/completions/drdnsctl
conf_c=$src/src/conf/conf.c
commands_c=$src/src/ctl/commands.c
cli_c=$src/src/cli/main.c
daemon_c=$src/src/daemon/main.c
ctl_h=$src/include/drdns/ctl.h
detector_c=$src/src/watchdog/detector.c
watchdog_c=$src/src/failover/watchdog.c
hooks_c=$src/src/watchdog/hooks.c
conf5=$man/drdns.conf.5
ctl8=$man/drdnsctl.8
d8=$man/drdnsd.8
pages=("$d8" "$ctl8" "$conf5")

for f in "${pages[@]}" "$completion" "$conf_c" "$commands_c" "$cli_c" "$daemon_c" "$ctl_h" \
	"$detector_c" "$watchdog_c" "$hooks_c" "$src/meson.build"; do
	if [[ ! -f $f ]]; then
		echo "man_check: missing $f" >&2
		exit 1
	fi
done
if ! command -v groff >/dev/null 2>&1; then
	echo "man_check: groff not found: install groff-base (listed in scripts/deps.sh)" >&2
	exit 1
fi

failures=0
fail() {
	echo "man_check: FAIL: $*" >&2
	failures=$((failures + 1))
}

# ---- helpers (few processes: this runs on every test run) ---------------

NL=$'\n'
# Is $1 a line of the newline-separated list $2?
in_list() { [[ "$NL$2$NL" == *"$NL$1$NL"* ]]; }

# Does text $2 mention $1 as a whole word (options, identifiers)?
mentions() {
	local re="(^|[^A-Za-z0-9_-])$1([^A-Za-z0-9_-]|\$)"
	[[ $2 =~ $re ]]
}

# The lines of section .SH $2 of page $1, up to the next .SH.
section() {
	awk -v want="$2" '
		/^\.SH / { t = $0; sub(/^\.SH +/, "", t); gsub(/"/, "", t); on = (t == want); next }
		on' "$1"
}

# roff source on stdin to plain words: macros, font escapes and quotes
# removed, \- as -.
plain() {
	sed -e 's/^\.[A-Za-z]* *//' -e 's/\\f[BIRP]//g' -e 's/\\-/-/g' -e 's/\\(dq//g' \
		-e 's/\\&//g' -e 's/\\%//g' -e 's/\\c$//' -e 's/"//g'
}

# Top-level .TP items of the roff block on stdin, one "tag<TAB>body" line
# each, in plain words.  Anything inside .RS/.RE belongs to the enclosing item.
items() {
	awk '
		function clean(s) {
			sub(/^\.[A-Za-z]+ */, "", s)
			gsub(/\\f[BIRP]/, "", s); gsub(/\\-/, "-", s); gsub(/\\\(dq/, "", s)
			gsub(/\\&/, "", s); gsub(/\\%/, "", s); gsub(/\\c$/, "", s); gsub(/"/, "", s)
			return s
		}
		function flush() { if (tag != "") print tag "\t" body; tag = ""; body = "" }
		/^\.RS/ { depth++ }
		/^\.RE/ { depth-- }
		/^\.(SS|SH)/ && depth == 0 { flush(); next }
		/^\.TP/ && depth == 0 { flush(); want_tag = 1; next }
		want_tag { tag = clean($0); want_tag = 0; next }
		tag != "" { body = body " " clean($0) }
		END { flush() }'
}

# First word of a tag: "promote --reason text" -> promote.
first_word() {
	local w=${1#"${1%%[A-Za-z0-9_]*}"}
	printf '%s' "${w%%[^A-Za-z0-9_]*}"
}

# A C source file as one line: comments removed, blanks collapsed.
c_flat() {
	sed -e 's:^[[:blank:]]*//.*$::' -e 's:[[:blank:]]//[^"]*$::' "$1" | tr '\n\t' '  ' |
		sed -e 's:/\*[^*]*\*\+\([^/*][^*]*\*\+\)*/: :g' -e 's/  */ /g'
}

# "long short" for every entry of every struct option table in C file $1;
# short is empty when the value is not a character of a getopt string.
c_options() {
	local flat shorts
	flat=$(c_flat "$1")
	shorts=$(grep -o -e 'getopt_long([^;]*;' -e 'shortopts = [^;]*;' <<<"$flat" |
		grep -o '"[^"]*"' | tr -d '":+\n')
	grep -o 'static const struct option [a-z_]*\[\] = {[^;]*;' <<<"$flat" |
		grep -o "{\"[a-z-]*\", [a-z_]*, NULL, [^}]*}" |
		sed -e "s/^{\"\([a-z-]*\)\", [a-z_]*, NULL, '\(.\)'}\$/\1 \2/" \
			-e 's/^{"\([a-z-]*\)", .*$/\1/' | sort -u |
		while read -r long short; do
			[[ -n $short && $shorts == *"$short"* ]] || short=
			echo "$long $short"
		done
}

# ---- 1. formatting ------------------------------------------------------

version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$src/meson.build" | head -n 1)
for p in "${pages[@]}"; do
	name=${p##*/}
	out=$(groff -man -ww -z -Tutf8 "$p" 2>&1)
	[[ -z $out ]] || fail "$name: groff warnings:$NL$out"
	wide=$(groff -man -Tascii -P-cbou -rLL=78n "$p" 2>/dev/null | awk 'length($0) > 80 { print NR ": " $0 }')
	[[ -z $wide ]] || fail "$name: rendered lines wider than 80 columns:$NL$wide"
	grep -q "^\.TH .*\"drdns $version\"" "$p" || fail "$name: .TH does not say \"drdns $version\" (meson.build)"
	bad=$(grep -n '[^[:print:][:blank:]]' "$p" | head -n 3)
	[[ -z $bad ]] || fail "$name: non-ASCII characters (use roff escapes):$NL$bad"
done
for f in "${pages[@]}" "$completion" "$here/man_check.sh"; do
	bad=$(grep -nE '[[:blank:]]$' "$f" | cut -d: -f1 | tr '\n' ' ')
	[[ -z $bad ]] || fail "${f##*/}: trailing whitespace on line(s) $bad"
done

# ---- 2. drdns.conf.5 against src/conf/conf.c ----------------------------

flat=$(c_flat "$conf_c")

# "table key" for every *_keys[] table
key_tables=$(grep -o 'static const char \*const [a-z_]*_keys\[\] = {[^}]*}' <<<"$flat" |
	sed -e 's/^static const char \*const \([a-z_]*\)_keys\[\] = {\(.*\)}$/\1 \2/' |
	awk '{ t = $1; $1 = ""; n = split($0, a, /"/); for (i = 2; i <= n; i += 2) print t " " a[i] }')
[[ -n $key_tables ]] || fail "no *_keys[] tables found in $conf_c"
groups=$(awk '$1 == "root" { print $2 }' <<<"$key_tables")
tables=$(awk '$1 != "root" { print $1 }' <<<"$key_tables" | sort -u)

settings=$(section "$conf5" SETTINGS)
doc_groups=$(awk '/^\.SS / { t = $0; sub(/^\.SS +/, "", t); gsub(/"/, "", t); print t }' <<<"$settings")
for g in $groups; do
	in_list "$g" "$doc_groups" || fail "drdns.conf.5: no '.SS $g' under SETTINGS (conf.c root_keys)"
done
for g in $doc_groups; do
	in_list "$g" "$groups" || fail "drdns.conf.5: '.SS $g' is not a group of conf.c root_keys"
done

# documented keys: doc[group.key] = body
declare -A doc=()
doc_list=
for g in $doc_groups; do
	while IFS=$'\t' read -r tag body; do
		k=$(first_word "$tag")
		doc[$g.$k]=$body
		doc_list+="$g.$k$NL"
	done < <(awk -v g="$g" '/^\.SS / { t = $0; sub(/^\.SS +/, "", t); gsub(/"/, "", t); on = (t == g) }
		on' <<<"$settings" | items)
done

for table in $tables; do
	g=
	for cand in "$table" "${table}s" "${table%y}ies"; do
		in_list "$cand" "$groups" && g=$cand && break
	done
	if [[ -z $g ]]; then
		fail "conf.c: table ${table}_keys matches no group of root_keys; teach man_check.sh"
		continue
	fi
	code=$(awk -v t="$table" '$1 == t { print $2 }' <<<"$key_tables")
	for k in $code; do
		[[ -v "doc[$g.$k]" ]] || fail "drdns.conf.5: $g.$k (conf.c ${table}_keys) is not documented under '.SS $g'"
	done
	while read -r gk; do
		[[ $gk == "$g".* ]] || continue
		in_list "${gk#*.}" "$code" || fail "drdns.conf.5: $gk is documented, but conf.c ${table}_keys does not accept it"
	done <<<"$doc_list"
done

# #define NAME VALUE from conf.c, evaluated (products like (90 * 86400.0) too)
declare -A def=()
while read -r n v; do
	def[$n]=$v
done < <(grep -E '^#define [A-Z_]+ +[(0-9]' "$conf_c" | sed -e 's:/\*.*$::' |
	awk '{ v = $0; sub(/^#define [A-Z_]+ +/, "", v); gsub(/[() ]/, "", v)
	       n = split(v, f, "*"); r = 1; for (i = 1; i <= n; i++) r *= f[i] + 0
	       if (r == int(r)) printf "%s %d\n", $2, r; else printf "%s %s\n", $2, r }')
# A C constant or macro as the page writes it: 120.0 -> 120, TIMEOUT_MAX -> 60.
num() {
	local v=$1
	[[ $v =~ ^[A-Z_]+$ ]] && v=${def[$v]:-?}
	[[ $v =~ ^([0-9]+)\.0*$ ]] && v=${BASH_REMATCH[1]}
	printf '%s' "$v"
}

# defaults: "c->GROUP.KEY = VALUE;" in set_defaults()
while read -r gk value; do
	[[ -v "doc[$gk]" ]] || continue # reported above
	got=
	if [[ ${doc[$gk]} =~ Default:\ ([^ ]*) ]]; then
		got=${BASH_REMATCH[1]}
		while [[ $got == *[.:\;,] ]]; do got=${got%?}; done
	fi
	[[ $(num "$got") == "$(num "$value")" ]] ||
		fail "drdns.conf.5: $gk says 'Default: ${got:-(nothing)}', but set_defaults() sets $value"
done < <(grep -o 'static void set_defaults([^{]*{[^}]*}' <<<"$flat" |
	grep -o 'c->[a-z_]*\.[a-z_]* = [^;]*;' | sed -e 's/^c->//' -e 's/ = / /' -e 's/;$//')

# ranges: get_int, get_num, get_port
check_range() { # group.key text
	[[ -v "doc[$1]" ]] || return 0
	[[ ${doc[$1]} == *"$2"* ]] || fail "drdns.conf.5: $1 does not say '$2' (its range in conf.c)"
}
while read -r g k lo hi; do
	check_range "$g.$k" "$(num "$lo") to $(num "$hi")"
done < <(grep -o 'get_int(l, [a-z]*, "[a-z_]*", "[a-z_]*", [A-Z_0-9]*, [A-Z_0-9]*' <<<"$flat" |
	sed -e 's/get_int(l, [a-z]*, "\([a-z_]*\)", "\([a-z_]*\)", \([A-Z_0-9]*\), \([A-Z_0-9]*\)/\1 \2 \3 \4/')
while read -r g k lo bound hi; do
	if [[ $bound == INCL ]]; then
		check_range "$g.$k" "$(num "$lo") to $(num "$hi")"
	else
		check_range "$g.$k" "ore than $(num "$lo"), at most $(num "$hi")"
	fi
done < <(grep -o 'get_num(l, [a-z]*, "[a-z_]*", "[a-z_]*", [A-Z_0-9.]*, [A-Z]*, [A-Z_0-9.]*' <<<"$flat" |
	sed -e 's/get_num(l, [a-z]*, "\([a-z_]*\)", "\([a-z_]*\)", \([A-Z_0-9.]*\), \([A-Z]*\), \([A-Z_0-9.]*\)/\1 \2 \3 \4 \5/')
while read -r g; do
	[[ $g == prefix ]] && g=secondaries # the per-secondary loader passes its prefix
	check_range "$g.port" "$(num PORT_MIN) to $(num PORT_MAX)"
done < <(grep -o 'get_port(l, [a-z]*, "*[a-z]*' <<<"$flat" | sed -e 's/.*, "*//')

# ---- 3. drdnsctl.8 and the completion against src/ctl and src/cli -------

# "name<TAB>args" for every row of the command table
cmd_rows=$(c_flat "$commands_c" | grep -o '{DRDNS_CMD_[A-Z_]*, "[a-z-]*", "[^"]*"' |
	sed -e 's/^{DRDNS_CMD_[A-Z_]*, "\([a-z-]*\)", "\([^"]*\)"$/\1\t\2/')
[[ -n $cmd_rows ]] || fail "no commands found in $commands_c"
declare -A item=()
while IFS=$'\t' read -r tag body; do
	item[$(first_word "$tag")]="$tag $body"
done < <(section "$ctl8" COMMANDS | items)
synopsis=$(section "$ctl8" SYNOPSIS)

# Run the function that completes drdnsctl in a clean bash: one completion
# per argument, words separated by blanks, the last one being completed.
# Prints one "#<index>" line and then the candidates for each.
complete_each() {
	bash --norc --noprofile -c '
		source "$1" || exit 1
		shift
		f=$(complete -p drdnsctl 2>/dev/null)
		f=${f#* -F }
		f=${f%% *}
		[[ $(type -t "$f") == function ]] || { echo "no complete -F for drdnsctl" >&2; exit 1; }
		i=0
		for line in "$@"; do
			read -r -a COMP_WORDS <<<"$line"
			[[ $line == *" " ]] && COMP_WORDS+=("")
			COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
			COMP_LINE=$line
			COMP_POINT=${#line}
			COMPREPLY=()
			"$f" drdnsctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
			echo "#$i"
			printf "%s\n" "${COMPREPLY[@]}"
			i=$((i + 1))
		done' _ "$completion" "$@"
}
global_long=$(c_flat "$cli_c" | grep -o 'static const struct option global_long\[\] = {[^;]*;' |
	grep -o '{"[a-z-]*"' | tr -d '{"')
[[ -n $global_long ]] || fail "no global_long[] options found in $cli_c"

cmds=$(cut -f1 <<<"$cmd_rows")
lines=("drdnsctl " "drdnsctl -")
for c in $cmds; do
	lines+=("drdnsctl $c --")
done
declare -A offered=()
idx=
while IFS= read -r l; do
	if [[ $l == '#'* ]]; then
		idx=${l#\#}
		offered[$idx]=
	elif [[ -n $idx && -n $l ]]; then
		offered[$idx]+="$l$NL"
	fi
done < <(complete_each "${lines[@]}")
[[ -v "offered[0]" ]] || fail "completions/drdnsctl: could not be run"

for o in $global_long; do
	in_list "--$o" "${offered[1]:-}" || fail "completions/drdnsctl: does not complete the global option --$o"
done

i=2
while IFS=$'\t' read -r cmd args; do
	[[ -n $cmd ]] || continue
	opts=$(grep -o -- '--[a-z-]*' <<<"$args" | sort -u)
	if [[ -z ${item[$cmd]:-} ]]; then
		fail "drdnsctl.8: command '$cmd' (commands.c) has no item under COMMANDS"
	else
		for o in $opts; do
			mentions "$o" "${item[$cmd]}" || fail "drdnsctl.8: the COMMANDS item '$cmd' does not mention $o"
		done
	fi
	syn=$(awk -v c="$cmd" '/^\.SY/ { blk = ""; on = 1 } on { blk = blk "\n" $0 }
		/^\.YS/ { on = 0; if (blk ~ ("\n\\.B " c "\n")) print blk }' <<<"$synopsis" | plain)
	if [[ -z $syn ]]; then
		fail "drdnsctl.8: no SYNOPSIS entry (.SY ... .B $cmd ... .YS) for '$cmd'"
	else
		for o in $opts; do
			mentions "$o" "$syn" || fail "drdnsctl.8: the SYNOPSIS of '$cmd' does not show $o"
		done
	fi
	in_list "$cmd" "${offered[0]:-}" || fail "completions/drdnsctl: does not complete the command '$cmd'"
	# after the command: exactly its own options, besides the global ones
	got=
	while read -r o; do
		[[ -n $o ]] && ! in_list "${o#--}" "$global_long" && got+="$o$NL"
	done <<<"${offered[$i]:-}"
	got=$(sort -u <<<"$got" | sed '/^$/d')
	[[ $got == "$opts" ]] ||
		fail "completions/drdnsctl: after '$cmd' offers [${got//$NL/ }]; commands.c says [${opts//$NL/ }]"
	i=$((i + 1))
done <<<"$cmd_rows"

# every option of every table: the global ones under OPTIONS, the others
# under COMMANDS; short forms too
options_text=$(section "$ctl8" OPTIONS | plain)
commands_text=$(section "$ctl8" COMMANDS | plain)
while read -r long short; do
	if in_list "$long" "$global_long"; then
		where=OPTIONS text=$options_text
	else
		where=COMMANDS text=$commands_text
	fi
	mentions "--$long" "$text" || fail "drdnsctl.8: --$long (src/cli/main.c) is not documented under $where"
	if [[ -n $short ]]; then
		mentions "-$short" "$text" || fail "drdnsctl.8: -$short (--$long) is not documented under $where"
	fi
done < <(c_options "$cli_c")

# exit codes
exit_tags=$(section "$ctl8" "EXIT STATUS" | items | cut -f1)
for code in $(grep -o 'DRDNS_EXIT_[A-Z]* = [0-9]*' "$ctl_h" | awk '{ print $3 }'); do
	in_list "$code" "$exit_tags" || fail "drdnsctl.8: exit code $code (enum drdns_exit) has no EXIT STATUS item"
done

# ---- 4. drdnsd.8 against src/daemon and the watchdog --------------------

d_options=$(section "$d8" OPTIONS | plain)
while read -r long short; do
	mentions "--$long" "$d_options" || fail "drdnsd.8: --$long (src/daemon/main.c) is not documented under OPTIONS"
	if [[ -n $short ]]; then
		mentions "-$short" "$d_options" || fail "drdnsd.8: -$short (--$long) is not documented under OPTIONS"
	fi
done < <(c_options "$daemon_c")

d_text=$(plain <"$d8")
d_hooks=$(section "$d8" HOOKS | plain)
d_metrics=$(section "$d8" METRICS | plain)
for n in $(grep -o '\[DRDNS_WD_[A-Z_]*\] = "[A-Z_]*"' "$detector_c" | sed 's/.*"\(.*\)"/\1/'); do
	mentions "$n" "$d_text" || fail "drdnsd.8: does not mention the watchdog state $n"
done
for n in $(grep -o '\[DRDNS_ALERT_[A-Z_]*\] = "[a-z_]*"' "$detector_c" | sed 's/.*"\(.*\)"/\1/') \
	$(grep -o 'kind=[a-z_]* ' "$watchdog_c" | sed 's/kind=//'); do
	mentions "$n" "$d_text" || fail "drdnsd.8: does not mention the alert $n"
done
for n in $(grep -ho 'DRDNS_[A-Z_]*=' "$watchdog_c" "$hooks_c" | tr -d = | sort -u); do
	mentions "$n" "$d_hooks" || fail "drdnsd.8: HOOKS does not mention the variable $n"
done
for n in $(grep -o 'help(&t, "drdns_[a-z_]*"' "$watchdog_c" | sed 's/.*"\(.*\)"/\1/'); do
	mentions "$n" "$d_metrics" || fail "drdnsd.8: METRICS does not mention $n"
done

if ((failures > 0)); then
	echo "man_check: $failures problem(s)" >&2
	exit 1
fi
echo "man_check: OK: ${#pages[@]} pages and the completion match $(wc -l <<<"$cmd_rows") commands" \
	"and $(wc -l <<<"$key_tables") configuration keys"
