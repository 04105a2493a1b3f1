/*
 * keys.c - `tandem keys create|list|revoke`: the S3 access keys of the
 * deployment, kept in the secrets file's [s3] section (objects/s3keys.h).
 * Every region reads that file and notices a change within a second, so a
 * new key works at once in both regions and a revoked one stops working.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"
#include "objects/s3keys.h"

static const char usage_keys[] =
	"usage: tandem keys create --config FILE --name NAME [--json]\n"
	"       tandem keys list --config FILE [--json]\n"
	"       tandem keys revoke --config FILE AKID\n"
	"\n"
	"Manage the S3 access keys (secrets file, section [s3]). create prints a new\n"
	"access key id and its secret (the only time the secret is shown) for tenant\n"
	"NAME; the tenant owns the buckets its keys create. list shows key ids and\n"
	"tenants, never secrets. revoke removes a key. Running regions pick the\n"
	"change up within a second.\n";

static void list_one(void *arg, const char *id, const char *tenant)
{
	int *json = arg;
	if (*json >= 1) {
		buf b;
		buf_init(&b, 1024);
		buf_adds(&b, *json == 1 ? "" : ",");
		buf_adds(&b, "\n  {\"access_key_id\": \"");
		buf_add_json_escaped(&b, id, strlen(id));
		buf_adds(&b, "\", \"name\": \"");
		buf_add_json_escaped(&b, tenant, strlen(tenant));
		buf_adds(&b, "\"}");
		fwrite(b.data, 1, b.len, stdout);
		buf_free(&b);
		*json = 2;
	} else {
		printf("%-24s %s\n", id, tenant);
	}
}

int cmd_keys(int argc, char **argv)
{
	const char *sub = argc >= 2 ? argv[1] : NULL;
	if (!sub || cli_is_help(sub)) {
		fputs(usage_keys, sub ? stdout : stderr);
		return sub ? 0 : 1;
	}
	const char *config_path = NULL, *name = NULL, *akid = NULL;
	int json = 0;
	for (int i = 2; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs(usage_keys, stdout);
			return 0;
		} else if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			config_path = argv[++i];
		else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
			name = argv[++i];
		else if (argv[i][0] != '-' && !akid)
			akid = argv[i];
		else
			return cli_fail("unknown or incomplete option '%s' (see tandem keys --help)", argv[i]);
	}
	if (!config_path)
		return cli_fail("keys %s needs --config FILE", sub);
	static config cfg;
	if (cli_load_config(config_path, &cfg) != 0)
		return 1;
	char err[1024];
	if (strcmp(sub, "create") == 0) {
		if (!name)
			return cli_fail("keys create needs --name NAME (the tenant that owns its buckets)");
		char id[S3KEYS_ID_LEN + 1], secret[S3KEYS_SECRET_LEN + 1];
		if (s3keys_create(cfg.secrets_file, name, id, secret, err, sizeof err) != 0)
			return cli_fail("%s", err);
		if (json)
			printf("{\"access_key_id\": \"%s\", \"secret_access_key\": \"%s\", \"name\": \"%s\"}\n", id,
			       secret, name);
		else
			printf("access_key_id     %s\nsecret_access_key %s\nname              %s\n", id, secret,
			       name);
		memset(secret, 0, sizeof secret);
		return 0;
	}
	if (strcmp(sub, "list") == 0) {
		if (json)
			fputs("[", stdout);
		if (s3keys_list(cfg.secrets_file, list_one, &json, err, sizeof err) != 0)
			return cli_fail("%s", err);
		if (json)
			fputs(json == 2 ? "\n]\n" : "]\n", stdout);
		return 0;
	}
	if (strcmp(sub, "revoke") == 0) {
		if (!akid)
			return cli_fail("keys revoke needs the access key id");
		int rc = s3keys_revoke(cfg.secrets_file, akid, err, sizeof err);
		if (rc != 0)
			return cli_fail("%s", err);
		printf("revoked %s\n", akid);
		return 0;
	}
	return cli_fail("unknown keys command '%s' (create, list, revoke)", sub);
}
