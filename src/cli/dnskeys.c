/*
 * dnskeys.c - `tandem dns key` and `tandem dns ds`: the DNSSEC keys of the
 * deployment's signed zones (dns/dnssec.h), kept in the secrets file's
 * [dnssec] section. `key` adds a key (for `tandem init`, or to start a
 * rollover); `ds` prints the DS records the parent zone must publish and
 * the DNSKEYs (a validator's trust anchor). Private keys are never printed.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/config.h"
#include "core/err.h"
#include "dns/dnsconf.h"
#include "dns/dnssec.h"

static const char usage_dnskeys[] =
	"usage: tandem dns key --config FILE --zone ZONE [--publish]\n"
	"       tandem dns ds --config FILE --zone ZONE\n"
	"\n"
	"key adds a new DNSSEC key (ECDSA P-256, a CSK) for ZONE to the secrets\n"
	"file's [dnssec] section: active (it signs: a double-signature rollover)\n"
	"or, with --publish, only published in the DNSKEY RRset. Restart the DNS\n"
	"instances to use it. ds prints the DS record of each key of ZONE (for the\n"
	"parent zone) and its DNSKEY (a trust anchor). See docs/DNS.md \"DNSSEC\".\n";

/* Is zone (text) a [zone] of the config with dnssec = on? */
static int signed_zone(const char *path, const char *zone, dns_name *origin)
{
	static dns_conf dc;
	char err[4096];
	if (dnsconf_load(path, &dc, err, sizeof err) != 0) {
		fprintf(stderr, "%s", err);
		return -1;
	}
	if (dns_name_from_text(zone, origin) != 0) {
		dnsconf_free(&dc);
		cli_fail("'%s' is not a zone name", zone);
		return -1;
	}
	bool found = false, on = false;
	for (int i = 0; i < dc.nzones; i++)
		if (dns_name_equal(dns_zone_origin(dc.zones[i]), origin)) {
			found = true;
			on = dns_zone_dnssec(dc.zones[i]);
		}
	dnsconf_free(&dc);
	if (!found) {
		cli_fail("%s has no [zone %s]", path, zone);
		return -1;
	}
	if (!on)
		fprintf(stderr, "tandem: note: [zone %s] does not have dnssec = on (yet)\n", zone);
	return 0;
}

static int print_ds(const char *secrets_path, const dns_name *origin)
{
	dnssec_keys *keys;
	char err[1024];
	if (dnssec_keys_load(secrets_path, origin, &keys, err, sizeof err) != 0)
		return cli_fail("%s", err);
	char zone[4 * DNS_NAME_MAX + 2];
	dns_name_to_text(origin, zone, sizeof zone);
	for (int i = 0; i < dnssec_keys_count(keys); i++) {
		uint8_t d[32];
		if (dnssec_key_ds(keys, i, d) != 0) {
			dnssec_keys_free(&keys);
			return cli_fail("cannot compute a DS digest (OpenSSL)");
		}
		printf("; key tag %u (%s)\n%s\tIN\tDS\t%u %d 2 ", dnssec_key_tag(keys, i),
		       dnssec_key_active(keys, i) ? "active: signs" : "publish: in the DNSKEY RRset only", zone,
		       dnssec_key_tag(keys, i), DNSSEC_ALGORITHM);
		for (int k = 0; k < 32; k++)
			printf("%02X", d[k]);
		const uint8_t *rd = dnssec_key_dnskey(keys, i);
		char b64[128];
		/* the public key in standard base64, as zone files show it */
		static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		size_t o = 0;
		for (size_t k = 4; k < DNSSEC_DNSKEY_RDLEN; k += 3) {
			uint32_t v = (uint32_t)rd[k] << 16 | (k + 1 < DNSSEC_DNSKEY_RDLEN ? (uint32_t)rd[k + 1] << 8 : 0) |
				     (k + 2 < DNSSEC_DNSKEY_RDLEN ? rd[k + 2] : 0);
			b64[o++] = tab[v >> 18 & 63];
			b64[o++] = tab[v >> 12 & 63];
			b64[o++] = k + 1 < DNSSEC_DNSKEY_RDLEN ? tab[v >> 6 & 63] : '=';
			b64[o++] = k + 2 < DNSSEC_DNSKEY_RDLEN ? tab[v & 63] : '=';
		}
		b64[o] = '\0';
		printf("\n%s\tIN\tDNSKEY\t257 3 %d %s\n", zone, DNSSEC_ALGORITHM, b64);
	}
	dnssec_keys_free(&keys);
	return 0;
}

int cmd_dns_keys(int argc, char **argv)
{
	const char *sub = argv[1];
	const char *path = NULL, *zone = NULL;
	bool publish = false;
	for (int i = 2; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs(usage_dnskeys, stdout);
			return 0;
		} else if (strcmp(argv[i], "--publish") == 0 && strcmp(sub, "key") == 0)
			publish = true;
		else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strcmp(argv[i], "--zone") == 0 && i + 1 < argc)
			zone = argv[++i];
		else
			return cli_fail("unknown or incomplete option '%s' (see tandem dns %s --help)", argv[i], sub);
	}
	if (!path || !zone)
		return cli_fail("dns %s needs --config FILE --zone ZONE", sub);
	static config cfg;
	if (cli_load_config(path, &cfg) != 0)
		return 1;
	dns_name origin;
	if (signed_zone(path, zone, &origin) != 0)
		return 1;
	if (strcmp(sub, "ds") == 0)
		return print_ds(cfg.secrets_file, &origin);
	char id[16], err[1024];
	if (dnssec_secrets_add_key(cfg.secrets_file, zone, publish ? "publish" : "active", id, sizeof id, err,
				   sizeof err) != 0)
		return cli_fail("%s", err);
	fprintf(stderr, "tandem: added key.%s (%s) for %s to %s; restart the DNS instances to use it\n", id,
		publish ? "publish" : "active", zone, cfg.secrets_file);
	return print_ds(cfg.secrets_file, &origin);
}

int cli_dnssec_init_keys(const char *config_path, const char *secrets_path)
{
	static dns_conf dc;
	char err[4096];
	if (dnsconf_load(config_path, &dc, err, sizeof err) != 0)
		return 0; /* `tandem dns` and `config check` say why */
	int rc = 0;
	for (int i = 0; i < dc.nzones && rc == 0; i++) {
		if (!dns_zone_dnssec(dc.zones[i]))
			continue;
		dnssec_keys *keys;
		int lrc = dnssec_keys_load(secrets_path, dns_zone_origin(dc.zones[i]), &keys, err, sizeof err);
		dnssec_keys_free(&keys);
		if (lrc != ERR_NOTFOUND) {
			if (lrc != 0)
				rc = cli_fail("%s", err);
			continue;
		}
		char zone[4 * DNS_NAME_MAX + 2], id[16];
		dns_name_to_text(dns_zone_origin(dc.zones[i]), zone, sizeof zone);
		if (dnssec_secrets_add_key(secrets_path, zone, "active", id, sizeof id, err, sizeof err) != 0)
			rc = cli_fail("%s", err);
		else
			fprintf(stderr, "tandem: created the DNSSEC key %s of %s (tandem dns ds prints its DS)\n", id, zone);
	}
	dnsconf_free(&dc);
	return rc;
}
