/*
 * main.c - the tandem binary: one program, many subcommands.
 *
 *   tandem up        start the whole local deployment (children on loopback)
 *   tandem init      create config, secrets and certificates, start nothing
 *   tandem region    run one region node
 *   tandem certs     create the development CA and certificates
 *   tandem config check FILE
 *   tandem drill     the DR drill (src/drill/)
 *   tandem version | help
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/certs.h"
#include "core/config.h"
#include "dns/dnsconf.h"
#include "edge/edge.h"
#include "edge/edgeconf.h"
#include "dns/dnssec.h"
#include "dns/server.h"
#include "failover/witness.h"
#include "region/region.h"

#ifndef TANDEM_VERSION
#define TANDEM_VERSION "0.1.0"
#endif

int cli_fail(const char *fmt, ...)
{
	va_list ap;
	fputs("tandem: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int cli_is_help(const char *arg)
{
	return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

static const char usage_main[] =
	"usage: tandem <command> [options]\n"
	"\n"
	"commands:\n"
	"  up [--data DIR] [--port-base N] [--config FILE] [--print-config]\n"
	"                      start the local deployment (creates what it needs)\n"
	"  init [--data DIR] [--port-base N]\n"
	"                      create config, secrets and certificates only\n"
	"  region --config FILE --region NAME\n"
	"                      run one region node\n"
	"  witness --config FILE\n"
	"                      run the witness (the third voter)\n"
	"  dns --config FILE --name NAME\n"
	"                      run an authoritative DNS server of the deployment\n"
	"  dns key|ds --config FILE --zone ZONE\n"
	"                      add a DNSSEC key (rollover); print the DS for the parent\n"
	"  edge --config FILE --name NAME\n"
	"                      run the edge [edge NAME]: a proxy with failover in front of the regions\n"
	"  certs --config FILE create the development CA and certificates\n"
	"  switchover --config FILE --to REGION\n"
	"                      planned move of the primary (RPO 0)\n"
	"  failover --config FILE --to REGION [--force]\n"
	"                      operator-forced failover to REGION\n"
	"  quarantine list|show --config FILE [FILE]\n"
	"                      writes taken back from a rejoining old primary\n"
	"  status --config FILE [--json]\n"
	"                      roles, positions, lag and link state of every region\n"
	"  verify --config FILE\n"
	"                      compare both regions' data at the same position\n"
	"  drill --scenario NAME [--rate N] [--duration S] [--report DIR] [--json]\n"
	"                      DR drill: fault, heal, check RPO/RTO (docs/DRILL.md)\n"
	"  keys create|list|revoke --config FILE [--name NAME] [--json] [AKID]\n"
	"                      S3 access keys (secrets file [s3])\n"
	"  config check FILE   validate a config file\n"
	"  version             print the version\n"
	"  help [COMMAND]      this text, or a command's\n"
	"\n"
	"Every command takes --help.\n";

static const char usage_region[] =
	"usage: tandem region --config FILE --region NAME\n"
	"\n"
	"Run the region node NAME of the deployment described by FILE: the HTTPS\n"
	"mobile API on its api_listen address, with its database in its data_dir.\n"
	"SIGTERM or SIGINT stop it gracefully (requests in flight are finished).\n";

static const char usage_witness[] =
	"usage: tandem witness --config FILE\n"
	"\n"
	"Run the witness of the deployment described by FILE (its [witness]\n"
	"section): the third voter of the failover protocol, meant to run in a\n"
	"third location. It holds no data, only its votes (DATA/voter.json).\n"
	"SIGTERM or SIGINT stop it.\n";

static const char usage_certs[] =
	"usage: tandem certs --config FILE [--name NAME [--san LIST]]\n"
	"\n"
	"Create, in the config's certs_dir, a development CA (ca.pem, ca.key) and a\n"
	"certificate per region (NAME.pem, NAME.key) and one for the command line\n"
	"(admin.pem, admin.key), with the OpenSSL API. Files that\n"
	"exist and are valid are kept. Keys are mode 0600. Real deployments point\n"
	"the config at their own PEM files instead.\n"
	"With --name, one more certificate, NAME.pem and NAME.key (NAME: [a-z0-9.-]),\n"
	"signed by the same CA, naming NAME, localhost, 127.0.0.1 and the --san list\n"
	"(\"DNS:app.example.test,DNS:*.example.test,IP:127.0.0.7\"): an edge's\n"
	"certificates for its domains (cert = NAME CERTFILE KEYFILE, docs/EDGE.md).\n";

static const char usage_config[] =
	"usage: tandem config check FILE\n"
	"\n"
	"Validate FILE. Problems are printed as FILE:LINE: message; the exit code\n"
	"is 0 when the file is valid, 1 otherwise.\n";

/* Print config_load's message lines as they are ("FILE:LINE: message",
 * the format of `tandem config check`), or each after prefix. */
static void print_config_errors(const char *err, const char *prefix)
{
	for (const char *line = err; *line;) {
		size_t n = strcspn(line, "\n");
		fprintf(stderr, "%s%.*s\n", prefix, (int)n, line);
		line += n + (line[n] == '\n');
	}
}

int cli_load_config(const char *path, config *cfg)
{
	char err[4096];
	if (config_load(path, cfg, err, sizeof err) != 0) {
		print_config_errors(err[0] ? err : "cannot load the config", "tandem: ");
		return -1;
	}
	return 0;
}

static int load_config(const char *path, config *cfg)
{
	return cli_load_config(path, cfg);
}

/* Find "--name VALUE" in argv; NULL if absent. *bad set when the value is missing. */
static const char *option(int argc, char **argv, const char *name, int *bad)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], name) == 0) {
			if (i + 1 >= argc) {
				*bad = 1;
				return NULL;
			}
			return argv[i + 1];
		}
	}
	return NULL;
}

static int check_options(int argc, char **argv, const char *const *known, const char *usage)
{
	for (int i = 1; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs(usage, stdout);
			return 0;
		}
		int ok = 0;
		for (int k = 0; known[k]; k++)
			if (strcmp(argv[i], known[k]) == 0)
				ok = 1;
		if (!ok)
			return cli_fail("unknown option '%s' (see %s --help)", argv[i], argv[0]);
		i++; /* skip the value */
	}
	return -1; /* go on */
}

static int cmd_region(int argc, char **argv)
{
	static const char *const known[] = {"--config", "--region", NULL};
	int rc = check_options(argc, argv, known, usage_region);
	if (rc >= 0)
		return rc;
	int bad = 0;
	const char *path = option(argc, argv, "--config", &bad);
	const char *name = option(argc, argv, "--region", &bad);
	if (!path || !name || bad)
		return cli_fail("region needs --config FILE and --region NAME");
	static config cfg;
	if (load_config(path, &cfg) != 0)
		return 1;
	if (!config_region_find(&cfg, name))
		return cli_fail("%s: no [region %s] section", path, name);
	int ready_fd = -1;
	const char *fd_env = getenv("TANDEM_READY_FD");
	if (fd_env)
		ready_fd = atoi(fd_env);
	return region_main(&cfg, name, ready_fd);
}

static int cmd_witness(int argc, char **argv)
{
	static const char *const known[] = {"--config", NULL};
	int rc = check_options(argc, argv, known, usage_witness);
	if (rc >= 0)
		return rc;
	int bad = 0;
	const char *path = option(argc, argv, "--config", &bad);
	if (!path || bad)
		return cli_fail("witness needs --config FILE");
	static config cfg;
	if (load_config(path, &cfg) != 0)
		return 1;
	if (!cfg.witness.listen[0])
		return cli_fail("%s: no [witness] section with listen = HOST:PORT", path);
	int ready_fd = -1;
	const char *fd_env = getenv("TANDEM_READY_FD");
	if (fd_env)
		ready_fd = atoi(fd_env);
	return witness_main(&cfg, ready_fd);
}

static const char usage_dns[] =
	"usage: tandem dns --config FILE --name NAME\n"
	"       tandem dns key|ds --config FILE --zone ZONE   (DNSSEC keys: tandem dns key --help)\n"
	"\n"
	"Run the authoritative DNS server [dns NAME] of FILE for its [zone ...]\n"
	"sections, over UDP and TCP on each of its listen addresses (docs/DNS.md).\n"
	"Stops on SIGTERM or SIGINT.\n";

static int cmd_dns(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "key") == 0 || strcmp(argv[1], "ds") == 0))
		return cmd_dns_keys(argc, argv);
	static const char *const known[] = {"--config", "--name", NULL};
	int rc = check_options(argc, argv, known, usage_dns);
	if (rc >= 0)
		return rc;
	int bad = 0;
	const char *path = option(argc, argv, "--config", &bad);
	const char *name = option(argc, argv, "--name", &bad);
	if (!path || !name || bad)
		return cli_fail("dns needs --config FILE --name NAME");
	static config cfg;
	if (load_config(path, &cfg) != 0)
		return 1;
	static dns_conf dc;
	char err[4096];
	if (dnsconf_load(path, &dc, err, sizeof err) != 0) {
		print_config_errors(err, "tandem: ");
		return 1;
	}
	int ready_fd = -1;
	const char *fd_env = getenv("TANDEM_READY_FD");
	if (fd_env)
		ready_fd = atoi(fd_env);
	rc = dns_server_main(&cfg, &dc, name, ready_fd);
	dnsconf_free(&dc);
	return rc;
}

static const char usage_edge[] =
	"usage: tandem edge --config FILE --name NAME\n"
	"       tandem edge --config FILE --print purge-token\n"
	"\n"
	"Run the edge [edge NAME] of FILE: a caching reverse proxy in front of its\n"
	"origins (the regions) with failover inside a request (docs/EDGE.md).\n"
	"Stops on SIGTERM or SIGINT.\n"
	"--print purge-token: print the bearer token of POST /_edge/purge (derived\n"
	"from the deployment's secrets file; the same for every edge).\n";

static int cmd_edge(int argc, char **argv)
{
	static const char *const known[] = {"--config", "--name", "--print", NULL};
	int rc = check_options(argc, argv, known, usage_edge);
	if (rc >= 0)
		return rc;
	int bad = 0;
	const char *path = option(argc, argv, "--config", &bad);
	const char *name = option(argc, argv, "--name", &bad);
	const char *print = option(argc, argv, "--print", &bad);
	if (print && path && !bad) {
		if (strcmp(print, "purge-token") != 0)
			return cli_fail("--print: only purge-token");
		static config pcfg;
		if (load_config(path, &pcfg) != 0)
			return 1;
		char token[65], perr[512];
		if (edge_purge_token(&pcfg, token, perr, sizeof perr) != 0)
			return cli_fail("%s", perr);
		printf("%s\n", token);
		return 0;
	}
	if (!path || !name || bad)
		return cli_fail("edge needs --config FILE --name NAME");
	static config cfg;
	if (load_config(path, &cfg) != 0)
		return 1;
	static edge_confs ec;
	char err[4096];
	if (edgeconf_load(path, &ec, err, sizeof err) != 0) {
		print_config_errors(err, "tandem: ");
		return 1;
	}
	int ready_fd = -1;
	const char *fd_env = getenv("TANDEM_READY_FD");
	if (fd_env)
		ready_fd = atoi(fd_env);
	return edge_main(&cfg, &ec, name, ready_fd);
}

static int cmd_certs(int argc, char **argv)
{
	static const char *const known[] = {"--config", "--name", "--san", NULL};
	int rc = check_options(argc, argv, known, usage_certs);
	if (rc >= 0)
		return rc;
	int bad = 0;
	const char *path = option(argc, argv, "--config", &bad);
	const char *name = option(argc, argv, "--name", &bad);
	const char *san = option(argc, argv, "--san", &bad);
	if (!path || bad)
		return cli_fail("certs needs --config FILE");
	if (san && !name)
		return cli_fail("certs: --san needs --name");
	static config cfg;
	if (load_config(path, &cfg) != 0)
		return 1;
	char err[1024];
	if (name) {
		if (certs_ensure_sans(cfg.certs_dir, &name, &san, 1, err, sizeof err) != 0)
			return cli_fail("%s", err);
		printf("certificate %s ready in %s\n", name, cfg.certs_dir);
		return 0;
	}
	if (cli_ensure_certs(&cfg, err, sizeof err) != 0)
		return cli_fail("%s", err);
	printf("certificates ready in %s\n", cfg.certs_dir);
	return 0;
}

static int cmd_config(int argc, char **argv)
{
	if (argc >= 2 && cli_is_help(argv[1])) {
		fputs(usage_config, stdout);
		return 0;
	}
	if (argc < 2 || strcmp(argv[1], "check") != 0)
		return cli_fail("usage: tandem config check FILE");
	if (argc >= 3 && cli_is_help(argv[2])) {
		fputs(usage_config, stdout);
		return 0;
	}
	if (argc != 3)
		return cli_fail("usage: tandem config check FILE");
	static config cfg;
	char err[4096];
	if (config_load(argv[2], &cfg, err, sizeof err) != 0) {
		print_config_errors(err, "");
		return 1;
	}
	static dns_conf dns;
	if (dnsconf_load(argv[2], &dns, err, sizeof err) != 0) {
		print_config_errors(err, "");
		return 1;
	}
	/* a signed zone needs its key (when the secrets file is there to say) */
	for (int i = 0; i < dns.nzones && access(cfg.secrets_file, F_OK) == 0; i++) {
		dnssec_keys *keys = NULL;
		if (dns_zone_dnssec(dns.zones[i]) &&
		    dnssec_keys_load(cfg.secrets_file, dns_zone_origin(dns.zones[i]), &keys, err, sizeof err) != 0) {
			print_config_errors(err, "");
			dnsconf_free(&dns);
			return 1;
		}
		dnssec_keys_free(&keys);
	}
	static edge_confs edges;
	if (edgeconf_load(argv[2], &edges, err, sizeof err) != 0) {
		print_config_errors(err, "");
		dnsconf_free(&dns);
		return 1;
	}
	printf("%s: ok (%d region%s", argv[2], cfg.region_count, cfg.region_count == 1 ? "" : "s");
	if (edges.count)
		printf(", %d edge%s", edges.count, edges.count == 1 ? "" : "s");
	if (dns.nzones || dns.nservers)
		printf(", %d zone%s, %d dns server%s", dns.nzones, dns.nzones == 1 ? "" : "s", dns.nservers,
		       dns.nservers == 1 ? "" : "s");
	printf(")\n");
	dnsconf_free(&dns);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage_main, stderr);
		return 2;
	}
	const char *cmd = argv[1];
	static char *help_argv[3]; /* `tandem help X` runs `X --help` */
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("tandem %s\n", TANDEM_VERSION);
		return 0;
	}
	if (strcmp(cmd, "help") == 0 || cli_is_help(cmd)) {
		if (argc >= 3) {
			help_argv[0] = argv[2];
			help_argv[1] = "--help";
			argv = help_argv;
			argc = 2;
			cmd = argv[0];
		} else {
			fputs(usage_main, stdout);
			return 0;
		}
	} else {
		argv++;
		argc--;
	}
	if (strcmp(cmd, "up") == 0)
		return cmd_up(argc, argv);
	if (strcmp(cmd, "init") == 0)
		return cmd_init(argc, argv);
	if (strcmp(cmd, "region") == 0)
		return cmd_region(argc, argv);
	if (strcmp(cmd, "witness") == 0)
		return cmd_witness(argc, argv);
	if (strcmp(cmd, "dns") == 0)
		return cmd_dns(argc, argv);
	if (strcmp(cmd, "edge") == 0)
		return cmd_edge(argc, argv);
	if (strcmp(cmd, "switchover") == 0)
		return cmd_switchover(argc, argv);
	if (strcmp(cmd, "failover") == 0)
		return cmd_failover(argc, argv);
	if (strcmp(cmd, "quarantine") == 0)
		return cmd_quarantine(argc, argv);
	if (strcmp(cmd, "certs") == 0)
		return cmd_certs(argc, argv);
	if (strcmp(cmd, "status") == 0)
		return cmd_status(argc, argv);
	if (strcmp(cmd, "verify") == 0)
		return cmd_verify(argc, argv);
	if (strcmp(cmd, "config") == 0)
		return cmd_config(argc, argv);
	if (strcmp(cmd, "drill") == 0)
		return cmd_drill(argc, argv);
	if (strcmp(cmd, "keys") == 0)
		return cmd_keys(argc, argv);
	return cli_fail("unknown command '%s' (see tandem help)", cmd);
}
