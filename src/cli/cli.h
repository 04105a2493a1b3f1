/* cli.h - the subcommands of the tandem binary (one file each). */
#ifndef TANDEM_CLI_H
#define TANDEM_CLI_H

int cmd_up(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_switchover(int argc, char **argv);
int cmd_failover(int argc, char **argv);
int cmd_quarantine(int argc, char **argv);
int cmd_drill(int argc, char **argv);
int cmd_keys(int argc, char **argv);
/* `tandem dns key|ds` (argv[1] is "key" or "ds"). */
int cmd_dns_keys(int argc, char **argv);
/* For `tandem init`: a DNSSEC key in the secrets file for every zone of
 * the config with dnssec = on that has no active key. 0, or 1 (printed). */
int cli_dnssec_init_keys(const char *config_path, const char *secrets_path);

/* Print "tandem: <message>" on stderr; returns 1 (the exit code). */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Load the config at path; on failure print why on stderr, every line as
 * "tandem: FILE:LINE: message", and return -1 (cfg then holds defaults). */
struct config;
int cli_load_config(const char *path, struct config *cfg);
/* The development certificates of cfg's components (certs.h): every
 * region's naming its listeners' addresses and the routed names that
 * answer with it, the witness's its address. 0, or an ERR_* with err. */
int cli_ensure_certs(const struct config *cfg, char *err, size_t errcap);
/* Does argv[i] ask for help? */
int cli_is_help(const char *arg);

#endif
