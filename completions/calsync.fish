# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_calsync_global_optspecs
    string join \n config= state= pair= h/help V/version
end

function __fish_calsync_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_calsync_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_calsync_using_subcommand
    set -l cmd (__fish_calsync_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c calsync -n "__fish_calsync_needs_command" -l config -d 'The configuration file (TOML)' -r -F
complete -c calsync -n "__fish_calsync_needs_command" -l state -d 'The state file (SQLite); overrides the configuration\'s `state`. calsync creates the file, never its folder' -r -F
complete -c calsync -n "__fish_calsync_needs_command" -l pair -d 'Only this pair (repeatable; default: every pair in the configuration)' -r
complete -c calsync -n "__fish_calsync_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c calsync -n "__fish_calsync_needs_command" -s V -l version -d 'Print version'
complete -c calsync -n "__fish_calsync_needs_command" -f -a "sync" -d 'One pass per pair: read the source\'s changes, keep what is public, update the target'
complete -c calsync -n "__fish_calsync_needs_command" -f -a "cleanup" -d 'Remove calsync\'s own target events that ended before the retention horizon, and prune history and metrics'
complete -c calsync -n "__fish_calsync_needs_command" -f -a "validate" -d 'Read source and target and check that the target is exactly what should be published'
complete -c calsync -n "__fish_calsync_needs_command" -f -a "health" -d 'Check configuration, state, credentials, connectivity and freshness (Nagios exit codes)'
complete -c calsync -n "__fish_calsync_needs_command" -f -a "history" -d 'Show the last runs: outcomes, counts, durations and trends'
complete -c calsync -n "__fish_calsync_needs_command" -f -a "audit-verify" -d 'Recompute the audit log\'s HMAC chain and name the first bad entry'
complete -c calsync -n "__fish_calsync_needs_command" -f -a "generate" -d 'Write man pages or shell completions (for packaging)'
complete -c calsync -n "__fish_calsync_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c calsync -n "__fish_calsync_using_subcommand sync" -l config -d 'The configuration file (TOML)' -r -F
complete -c calsync -n "__fish_calsync_using_subcommand sync" -l state -d 'The state file (SQLite); overrides the configuration\'s `state`. calsync creates the file, never its folder' -r -F
complete -c calsync -n "__fish_calsync_using_subcommand sync" -l pair -d 'Only this pair (repeatable; default: every pair in the configuration)' -r
complete -c calsync -n "__fish_calsync_using_subcommand sync" -l dry-run -d 'Plan and report every create, update and delete (`plan.action`, by item and target id), but change nothing: no target write, and no state file, lock, audit key or metrics file created or touched (the state is read into memory and dropped)'
complete -c calsync -n "__fish_calsync_using_subcommand sync" -l full -d 'Ignore the stored sync cursors and read the whole source again'
complete -c calsync -n "__fish_calsync_using_subcommand sync" -l allow-mass-delete -d 'Apply deletions even when the deletion guard would withhold them (use once, on purpose)'
complete -c calsync -n "__fish_calsync_using_subcommand sync" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c calsync -n "__fish_calsync_using_subcommand sync" -s V -l version -d 'Print version'
complete -c calsync -n "__fish_calsync_using_subcommand cleanup" -l retention-days -d 'Keep events that ended within this many days, 0 to 36,500 (default: each pair\'s `retention_days`)' -r
complete -c calsync -n "__fish_calsync_using_subcommand cleanup" -l config -d 'The configuration file (TOML)' -r -F
complete -c calsync -n "__fish_calsync_using_subcommand cleanup" -l state -d 'The state file (SQLite); overrides the configuration\'s `state`. calsync creates the file, never its folder' -r -F
complete -c calsync -n "__fish_calsync_using_subcommand cleanup" -l pair -d 'Only this pair (repeatable; default: every pair in the configuration)' -r
complete -c calsync -n "__fish_calsync_using_subcommand cleanup" -l dry-run -d 'Report what would be removed (`plan.action`), remove nothing, and change no file (the state is read into memory and dropped)'
complete -c calsync -n "__fish_calsync_using_subcommand cleanup" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c calsync -n "__fish_calsync_using_subcommand cleanup" -s V -l version -d 'Print version'
complete -c calsync -n "__fish_calsync_using_subcommand validate" -l format -d 'Output format (default: text on a terminal, JSON otherwise)' -r -f -a "text\t'A readable table'
json\t'One JSON document'"
complete -c calsync -n "__fish_calsync_using_subcommand validate" -l config -d 'The configuration file (TOML)' -r -F
complete -c calsync -n "__fish_calsync_using_subcommand validate" -l state -d 'The state file (SQLite); overrides the configuration\'s `state`. calsync creates the file, never its folder' -r -F
complete -c calsync -n "__fish_calsync_using_subcommand validate" -l pair -d 'Only this pair (repeatable; default: every pair in the configuration)' -r
complete -c calsync -n "__fish_calsync_using_subcommand validate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c calsync -n "__fish_calsync_using_subcommand validate" -s V -l version -d 'Print version'
complete -c calsync -n "__fish_calsync_using_subcommand health" -l format -d 'Output format (default: text on a terminal, JSON otherwise)' -r -f -a "text\t'A readable table'
json\t'One JSON document'"
complete -c calsync -n "__fish_calsync_using_subcommand health" -l config -d 'The configuration file (TOML)' -r -F
complete -c calsync -n "__fish_calsync_using_subcommand health" -l state -d 'The state file (SQLite); overrides the configuration\'s `state`. calsync creates the file, never its folder' -r -F
complete -c calsync -n "__fish_calsync_using_subcommand health" -l pair -d 'Only this pair (repeatable; default: every pair in the configuration)' -r
complete -c calsync -n "__fish_calsync_using_subcommand health" -l offline -d 'Skip the checks that contact the source and target (auth, connectivity, calendars)'
complete -c calsync -n "__fish_calsync_using_subcommand health" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c calsync -n "__fish_calsync_using_subcommand health" -s V -l version -d 'Print version'
complete -c calsync -n "__fish_calsync_using_subcommand history" -l limit -d 'How many runs to list' -r
complete -c calsync -n "__fish_calsync_using_subcommand history" -l since -d 'Only runs started on or after this date (YYYY-MM-DD) or time (RFC 3339)' -r
complete -c calsync -n "__fish_calsync_using_subcommand history" -l format -d 'Output format (default: text on a terminal, JSON otherwise)' -r -f -a "text\t'A readable table'
json\t'One JSON document'"
complete -c calsync -n "__fish_calsync_using_subcommand history" -l config -d 'The configuration file (TOML)' -r -F
complete -c calsync -n "__fish_calsync_using_subcommand history" -l state -d 'The state file (SQLite); overrides the configuration\'s `state`. calsync creates the file, never its folder' -r -F
complete -c calsync -n "__fish_calsync_using_subcommand history" -l pair -d 'Only this pair (repeatable; default: every pair in the configuration)' -r
complete -c calsync -n "__fish_calsync_using_subcommand history" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c calsync -n "__fish_calsync_using_subcommand history" -s V -l version -d 'Print version'
complete -c calsync -n "__fish_calsync_using_subcommand audit-verify" -l format -d 'Output format (default: text on a terminal, JSON otherwise)' -r -f -a "text\t'A readable table'
json\t'One JSON document'"
complete -c calsync -n "__fish_calsync_using_subcommand audit-verify" -l expect-head -d 'The chain head last seen elsewhere (as logged by every run), `SEQ:MAC`; a chain that no longer reaches it was truncated' -r
complete -c calsync -n "__fish_calsync_using_subcommand audit-verify" -l config -d 'The configuration file (TOML)' -r -F
complete -c calsync -n "__fish_calsync_using_subcommand audit-verify" -l state -d 'The state file (SQLite); overrides the configuration\'s `state`. calsync creates the file, never its folder' -r -F
complete -c calsync -n "__fish_calsync_using_subcommand audit-verify" -l pair -d 'Only this pair (repeatable; default: every pair in the configuration)' -r
complete -c calsync -n "__fish_calsync_using_subcommand audit-verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c calsync -n "__fish_calsync_using_subcommand audit-verify" -s V -l version -d 'Print version'
complete -c calsync -n "__fish_calsync_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -l config -d 'The configuration file (TOML)' -r -F
complete -c calsync -n "__fish_calsync_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -l state -d 'The state file (SQLite); overrides the configuration\'s `state`. calsync creates the file, never its folder' -r -F
complete -c calsync -n "__fish_calsync_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -l pair -d 'Only this pair (repeatable; default: every pair in the configuration)' -r
complete -c calsync -n "__fish_calsync_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -s h -l help -d 'Print help'
complete -c calsync -n "__fish_calsync_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -s V -l version -d 'Print version'
complete -c calsync -n "__fish_calsync_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -f -a "man" -d 'Write man pages (calsync.1 and one per command) into DIR'
complete -c calsync -n "__fish_calsync_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -f -a "completions" -d 'Write the completion script for SHELL into DIR'
complete -c calsync -n "__fish_calsync_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c calsync -n "__fish_calsync_using_subcommand generate; and __fish_seen_subcommand_from man" -l config -d 'The configuration file (TOML)' -r -F
complete -c calsync -n "__fish_calsync_using_subcommand generate; and __fish_seen_subcommand_from man" -l state -d 'The state file (SQLite); overrides the configuration\'s `state`. calsync creates the file, never its folder' -r -F
complete -c calsync -n "__fish_calsync_using_subcommand generate; and __fish_seen_subcommand_from man" -l pair -d 'Only this pair (repeatable; default: every pair in the configuration)' -r
complete -c calsync -n "__fish_calsync_using_subcommand generate; and __fish_seen_subcommand_from man" -s h -l help -d 'Print help'
complete -c calsync -n "__fish_calsync_using_subcommand generate; and __fish_seen_subcommand_from man" -s V -l version -d 'Print version'
complete -c calsync -n "__fish_calsync_using_subcommand generate; and __fish_seen_subcommand_from completions" -l config -d 'The configuration file (TOML)' -r -F
complete -c calsync -n "__fish_calsync_using_subcommand generate; and __fish_seen_subcommand_from completions" -l state -d 'The state file (SQLite); overrides the configuration\'s `state`. calsync creates the file, never its folder' -r -F
complete -c calsync -n "__fish_calsync_using_subcommand generate; and __fish_seen_subcommand_from completions" -l pair -d 'Only this pair (repeatable; default: every pair in the configuration)' -r
complete -c calsync -n "__fish_calsync_using_subcommand generate; and __fish_seen_subcommand_from completions" -s h -l help -d 'Print help'
complete -c calsync -n "__fish_calsync_using_subcommand generate; and __fish_seen_subcommand_from completions" -s V -l version -d 'Print version'
complete -c calsync -n "__fish_calsync_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "man" -d 'Write man pages (calsync.1 and one per command) into DIR'
complete -c calsync -n "__fish_calsync_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "completions" -d 'Write the completion script for SHELL into DIR'
complete -c calsync -n "__fish_calsync_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c calsync -n "__fish_calsync_using_subcommand help; and not __fish_seen_subcommand_from sync cleanup validate health history audit-verify generate help" -f -a "sync" -d 'One pass per pair: read the source\'s changes, keep what is public, update the target'
complete -c calsync -n "__fish_calsync_using_subcommand help; and not __fish_seen_subcommand_from sync cleanup validate health history audit-verify generate help" -f -a "cleanup" -d 'Remove calsync\'s own target events that ended before the retention horizon, and prune history and metrics'
complete -c calsync -n "__fish_calsync_using_subcommand help; and not __fish_seen_subcommand_from sync cleanup validate health history audit-verify generate help" -f -a "validate" -d 'Read source and target and check that the target is exactly what should be published'
complete -c calsync -n "__fish_calsync_using_subcommand help; and not __fish_seen_subcommand_from sync cleanup validate health history audit-verify generate help" -f -a "health" -d 'Check configuration, state, credentials, connectivity and freshness (Nagios exit codes)'
complete -c calsync -n "__fish_calsync_using_subcommand help; and not __fish_seen_subcommand_from sync cleanup validate health history audit-verify generate help" -f -a "history" -d 'Show the last runs: outcomes, counts, durations and trends'
complete -c calsync -n "__fish_calsync_using_subcommand help; and not __fish_seen_subcommand_from sync cleanup validate health history audit-verify generate help" -f -a "audit-verify" -d 'Recompute the audit log\'s HMAC chain and name the first bad entry'
complete -c calsync -n "__fish_calsync_using_subcommand help; and not __fish_seen_subcommand_from sync cleanup validate health history audit-verify generate help" -f -a "generate" -d 'Write man pages or shell completions (for packaging)'
complete -c calsync -n "__fish_calsync_using_subcommand help; and not __fish_seen_subcommand_from sync cleanup validate health history audit-verify generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c calsync -n "__fish_calsync_using_subcommand help; and __fish_seen_subcommand_from generate" -f -a "man" -d 'Write man pages (calsync.1 and one per command) into DIR'
complete -c calsync -n "__fish_calsync_using_subcommand help; and __fish_seen_subcommand_from generate" -f -a "completions" -d 'Write the completion script for SHELL into DIR'
