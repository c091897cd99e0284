/*
 * drdns-signzone: sign one zone file with drdns's signer, for benchmarks and
 * for checking the signer against other tools.  A development tool (built,
 * not installed).
 *
 *   drdns-signzone -z ZONE -k KEYDIR [-t THREADS] [--nsec3] ZONEFILE OUTFILE
 *
 * Loads ZONEFILE as a DR zone (drdns_zone_load), the zone's keys from KEYDIR
 * (drdns_keyset_load, BIND's K<zone>+<alg>+<tag> files), signs with the
 * defaults of dnssec.h (30 days, inception 1 h back, jitter validity / 10,
 * NSEC3: 0 iterations, no salt), writes OUTFILE and prints the signer's
 * statistics on stderr.  Exit 0, 1 on failure, 2 on usage errors.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drdns/diag.h"
#include "drdns/dnssec.h"
#include "drdns/error.h"
#include "drdns/zone.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: drdns-signzone -z ZONE -k KEYDIR [-t THREADS] [--nsec3] ZONEFILE "
	           "OUTFILE\n");
}

static void print_diag(const struct drdns_diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		fprintf(stderr, "drdns-signzone: %s\n", d->msgs[i]);
}

int main(int argc, char **argv)
{
	const char *zone = NULL, *keydir = NULL;
	unsigned threads = 0;
	bool nsec3 = false;
	static const struct option opts[] = {
	    {"zone", required_argument, NULL, 'z'},    {"keys", required_argument, NULL, 'k'},
	    {"threads", required_argument, NULL, 't'}, {"nsec3", no_argument, NULL, '3'},
	    {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "z:k:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 'z': zone = optarg; break;
		case 'k': keydir = optarg; break;
		case 't': {
			char *end = NULL;
			unsigned long v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || v > 1024) {
				fprintf(stderr, "drdns-signzone: bad thread count \"%s\"\n",
				        optarg);
				return 2;
			}
			threads = (unsigned)v;
			break;
		}
		case '3': nsec3 = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!zone || !keydir || argc - optind != 2) {
		usage(stderr);
		return 2;
	}
	const char *in_path = argv[optind], *out_path = argv[optind + 1];

	struct drdns_diag diag = {0};
	struct drdns_zone *z = NULL;
	struct drdns_keyset *ks = NULL;
	struct drdns_zone *signed_zone = NULL;
	int rc = 1;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (drdns_zone_load(in_path, zone, &z, &diag) != 0) {
		print_diag(&diag);
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double load_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	int ret = drdns_keyset_load(keydir, zone, &ks, &diag);
	if (ret != 0) {
		print_diag(&diag);
		goto out;
	}
	if (!ks) {
		fprintf(stderr, "drdns-signzone: %s holds no key for zone %s\n", keydir, zone);
		goto out;
	}
	struct drdns_sign_params p = {
	    .now = (uint64_t)time(NULL),
	    .validity = 30 * 86400,
	    .inception_offset = 3600,
	    .jitter = 3 * 86400,
	    .nsec3 = nsec3,
	    .threads = threads,
	};
	struct drdns_sign_stats st = {0};
	char err[512] = "";
	ret = drdns_zone_sign(z, ks, &p, &signed_zone, &st, err, sizeof(err));
	if (ret != 0) {
		fprintf(stderr, "drdns-signzone: %s\n", err[0] ? err : drdns_strerror(ret));
		goto out;
	}
	ret = drdns_zone_write(signed_zone, out_path);
	if (ret != 0) {
		fprintf(stderr, "drdns-signzone: %s: %s\n", out_path, drdns_strerror(ret));
		goto out;
	}
	fprintf(stderr,
	        "drdns-signzone: %s: loaded in %.3f s; %zu RRsets signed, %zu signatures, %zu "
	        "%s records in %.3f s (%.0f signatures/s, %u threads%s)\n",
	        zone, load_s, st.rrsets_signed, st.signatures, st.nsec_records,
	        nsec3 ? "NSEC3" : "NSEC", st.seconds,
	        st.seconds > 0 ? (double)st.signatures / st.seconds : 0.0, threads,
	        threads ? "" : " = all CPUs");
	rc = 0;
out:
	drdns_zone_free(signed_zone);
	drdns_keyset_free(ks);
	drdns_zone_free(z);
	drdns_diag_clear(&diag);
	return rc;
}
