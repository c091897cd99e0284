#!/usr/bin/env python3
"""Differential test: the same queries to drdnsd and to NSD, answers compared.

Usage: compare.py [options] VARIANT=DRDNS_ADDR,NSD_ADDR,ZONEDIR ...

ZONEDIR holds ZONE.zone for every zone of --zones: the AXFR copies both servers
serve.  For each variant a deterministic corpus (--seed) of --per-variant
queries is generated from the zones and sent to both servers over UDP (no EDNS,
EDNS 512, 1232, 4096) and TCP, DO on and off.  The responses are compared
section by section:

  header   rcode (with the extended bits), opcode, QR AA TC RD RA AD CD
  EDNS     present, version, DO, options; the payload size as edns.payload
  sections answer, authority, additional as sets of RRsets keyed by the owner
           as sent (case kept), class, type (and covered type), each with its
           TTL and its set of rdata

Every difference is a field name (e.g. "authority.missing": an RRset NSD has in
the authority section and drdnsd does not; "answer.extra": the reverse;
"flag.CD.drdnsd": CD set by drdnsd only; "edns.ede": the Extended DNS Errors
differ; "answer.ttl", "answer.rdata", "answer.rdata-case" (names in the rdata differ
only in case), "answer.qname-case" (an owner that is the question's name, in
another case), "answer.case" (another owner's case); a section's field gets
"@tc" when both responses are truncated).  The allowlist (--allowlist) has one entry per
line:

  ID  QUERY-REGEX  FIELD-REGEX  | RFC reason

(the reason after the first " | "; the regexes hold no spaces: \s for one).
A FIELD-REGEX that holds ":" must match the whole "field:detail" instead, e.g.
"authority\.missing:\S+\sIN\sNSEC3" for a missing NSEC3 RRset.

QUERY-REGEX is searched in the query's description ("udp1232 +do rd diff.test.
ANY IN"), FIELD-REGEX must match the whole field name.  A query whose every
difference matches an entry is allowlisted (counted under each entry that
matched); any other difference fails.  With DO every RRSIG in a response is
validated with the zone's DNSKEY set; a signature that does not validate is a
failure of that server (field "rrsig.invalid").

Exit 0 when nothing differs outside the allowlist and every signature
validates, 1 otherwise, 2 on bad usage.
"""

import argparse
import concurrent.futures
import random
import re
import socket
import sys
import threading
import time

import dns.dnssec
import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone

TRANSPORTS = ["udp", "udp512", "udp1232", "udp4096", "tcp", "tcp-noedns"]
# now and then an EDNS version drdnsd and NSD do not know (RFC 6891 6.1.3: BADVERS)
BADVERS = "udp-ednsv1"
EXTRA_TYPES = ["A", "AAAA", "MX", "TXT", "NS", "SOA", "CNAME", "DS", "DNSKEY",
               "NSEC3PARAM", "RRSIG", "NSEC", "NSEC3", "ANY", "SRV", "PTR",
               "TYPE65280", "TYPE65534", "CAA", "HINFO"]
FLAGS = [("QR", dns.flags.QR), ("AA", dns.flags.AA), ("TC", dns.flags.TC),
         ("RD", dns.flags.RD), ("RA", dns.flags.RA), ("AD", dns.flags.AD),
         ("CD", dns.flags.CD)]
SECTIONS = ["answer", "authority", "additional"]
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-"


# --------------------------------------------------------------------------
# zones and corpus


class Zone:
    def __init__(self, name, path):
        self.origin = dns.name.from_text(name)
        self.zone = dns.zone.from_file(path, origin=self.origin, relativize=False,
                                       check_origin=False)
        self.owners = []          # owner names as in the zone (case kept)
        self.types = {}           # owner (lowercase text) -> set of type texts
        self.cuts = []            # delegation points (not the apex)
        self.wildcards = []       # parents of "*" owners
        for name, node in self.zone.nodes.items():
            self.owners.append(name)
            ts = set()
            for rds in node.rdatasets:
                ts.add(dns.rdatatype.to_text(rds.rdtype))
            self.types[name.to_text().lower()] = ts
            if name != self.origin and "NS" in ts:
                self.cuts.append(name)
            if name.labels[0] == b"*":
                self.wildcards.append(name.parent())
        ents = set()
        for name in self.owners:
            p = name
            while p != self.origin and len(p) > len(self.origin):
                p = p.parent()
                if p.to_text().lower() not in self.types:
                    ents.add(p.to_text().lower())
        self.ents = sorted(ents)
        dnskey = self.zone.get_rrset(self.origin, dns.rdatatype.DNSKEY)
        self.keys = {self.origin: dnskey} if dnskey is not None else None
        nsec3param = self.zone.get_rdataset(self.origin, dns.rdatatype.NSEC3PARAM)
        self.nsec3 = nsec3param is not None


def rand_label(rng, n=None):
    n = n or rng.randint(1, 12)
    s = "".join(rng.choice(ALPHABET[:36]) for _ in range(n))
    return s


def case_vary(rng, text):
    return "".join(c.upper() if c.isalpha() and rng.random() < 0.5 else c for c in text)


def corpus(zones, rng, count):
    """[(qname text, qtype text, qclass text)] then the transport options."""
    base = []   # (qname, qtype, qclass): every one is sent once
    pool = []   # further draws
    for z in zones:
        for owner in z.owners:
            ts = sorted(z.types[owner.to_text().lower()])
            for t in ts:
                base.append((owner.to_text(), t, "IN"))
            for t in EXTRA_TYPES:
                pool.append((owner.to_text(), t, "IN"))
            # absent names one and two labels below every owner
            pool.append((rand_label(rng) + "." + owner.to_text(), rng.choice(EXTRA_TYPES), "IN"))
            pool.append((rand_label(rng) + "." + rand_label(rng) + "." + owner.to_text(),
                         rng.choice(EXTRA_TYPES), "IN"))
        for ent in z.ents:
            for t in ["A", "TXT", "ANY", "DS", "NS"]:
                base.append((ent, t, "IN"))
            base.append((rand_label(rng) + "." + ent, "A", "IN"))
        for cut in z.cuts:
            c = cut.to_text()
            for t in ["NS", "DS", "A", "AAAA", "SOA", "ANY", "DNSKEY", "TXT"]:
                base.append((c, t, "IN"))
            for _ in range(4):
                pool.append((rand_label(rng) + "." + c, rng.choice(["A", "AAAA", "MX", "NS", "DS", "ANY"]), "IN"))
                pool.append((rand_label(rng) + "." + rand_label(rng) + "." + c, "A", "IN"))
        for w in z.wildcards:
            p = w.to_text()
            for t in EXTRA_TYPES:
                base.append((rand_label(rng) + "." + p, t, "IN"))
            for _ in range(6):
                pool.append((rand_label(rng) + "." + p, rng.choice(EXTRA_TYPES), "IN"))
                pool.append((rand_label(rng) + "." + rand_label(rng) + "." + p,
                             rng.choice(EXTRA_TYPES), "IN"))
        # absent names at every depth below the apex
        for depth in range(1, 6):
            for _ in range(4):
                labels = [rand_label(rng) for _ in range(depth)]
                pool.append((".".join(labels) + "." + z.origin.to_text(),
                             rng.choice(EXTRA_TYPES), "IN"))
        for t in ["SOA", "NS", "DNSKEY", "NSEC3PARAM", "RRSIG", "NSEC", "ANY", "DS",
                  "TYPE65534", "MX", "A", "AAAA", "CDS", "CDNSKEY", "ZONEMD", "HTTPS"]:
            base.append((z.origin.to_text(), t, "IN"))
    # CHAOS and out-of-zone names
    for name in ["id.server.", "version.bind.", "hostname.bind.", "version.server.",
                 "authors.bind."]:
        for t in ["TXT", "A", "ANY"]:
            base.append((name, t, "CH"))
    for name in ["example.com.", "test.", ".", "elsewhere.example.", "www.example.com."]:
        base.append((name, "A", "IN"))
        base.append((name, "NS", "IN"))
    base.append(("diff.test.", "SOA", "CH"))
    base.append(("diff.test.", "SOA", "HS"))

    out = []

    def opts(q):
        name, t, cls = q
        if rng.random() < 0.35:
            name = case_vary(rng, name)
        tr = rng.choice(TRANSPORTS) if rng.random() > 0.01 else BADVERS
        do = tr not in ("udp", "tcp-noedns") and rng.random() < 0.6
        rd = rng.random() < 0.5
        cd = rng.random() < 0.1
        return (name, t, cls, tr, do, rd, cd)

    for q in base:
        out.append(opts(q))
    while len(out) < count:
        out.append(opts(rng.choice(pool) if pool and rng.random() < 0.7 else rng.choice(base)))
    return out


def describe(q):
    name, t, cls, tr, do, rd, cd = q
    return "%s%s%s%s %s %s %s" % (tr, " +do" if do else "", " rd" if rd else "",
                                    " cd" if cd else "", name, t, cls)


# --------------------------------------------------------------------------
# sending


def ask(q, addr):
    name, t, cls, tr, do, rd, cd = q
    edns = tr not in ("udp", "tcp-noedns")
    payload = {"udp512": 512, "udp1232": 1232, "udp4096": 4096}.get(tr, 1232)
    msg = dns.message.make_query(name, t, cls, use_edns=0 if edns else False,
                                 payload=payload, want_dnssec=do)
    if tr == BADVERS:
        # (make_query of dnspython 2.3 keeps version 0 whatever use_edns says)
        msg.use_edns(1, msg.ednsflags & ~0xFF0000, payload)
    if not rd:
        msg.flags &= ~dns.flags.RD
    if cd:
        msg.flags |= dns.flags.CD
    for attempt in range(3):
        try:
            if tr.startswith("tcp"):
                return dns.query.tcp(msg, addr, timeout=3)
            return dns.query.udp(msg, addr, timeout=2, ignore_trailing=True,
                                 raise_on_truncation=False)
        except dns.exception.Timeout:
            if attempt == 2:
                return "timeout"
        except (dns.exception.DNSException, OSError, EOFError) as e:
            return "error: %s" % type(e).__name__
    return "timeout"


# --------------------------------------------------------------------------
# comparing


def norm(msg):
    if isinstance(msg, str):
        return {"error": msg}
    r = {"rcode": dns.rcode.to_text(msg.rcode()),
         "opcode": dns.opcode.to_text(msg.opcode()),
         "flags": " ".join(n for n, f in FLAGS if msg.flags & f),
         "edns": msg.edns,
         "edns.payload": msg.payload if msg.edns >= 0 else None,
         "edns.do": bool(msg.ednsflags & dns.flags.DO) if msg.edns >= 0 else None,
         "edns.options": sorted(o.to_text() for o in msg.options) if msg.edns >= 0 else None,
         "question": [rr.to_text() for rr in msg.question]}
    for sec in SECTIONS:
        d = {}
        for rrset in getattr(msg, sec):
            key = (rrset.name.to_text(), dns.rdataclass.to_text(rrset.rdclass),
                   dns.rdatatype.to_text(rrset.rdtype),
                   dns.rdatatype.to_text(rrset.covers) if rrset.covers else "")
            d[key] = (rrset.ttl, frozenset(rd.to_text() for rd in rrset))
        r[sec] = d
    return r


def key_text(k):
    return " ".join(x for x in (k[0], k[1], k[2] + ("(" + k[3] + ")" if k[3] else "")) if x)


def compare(a, b):
    """[(field, detail)] where a is drdnsd's and b NSD's normalized response."""
    diffs = []
    if "error" in a or "error" in b:
        if a.get("error") != b.get("error"):
            diffs.append(("transport", "drdnsd %s, NSD %s" % (a.get("error", "answered"),
                                                            b.get("error", "answered"))))
        return diffs
    for f in ["rcode", "opcode", "question"]:
        if a[f] != b[f]:
            diffs.append((f, "drdnsd %s, NSD %s" % (a[f], b[f])))
    fa, fb = set(a["flags"].split()), set(b["flags"].split())
    for n, _ in FLAGS:
        if (n in fa) != (n in fb):
            diffs.append(("flag.%s.%s" % (n, "drdnsd" if n in fa else "nsd"),
                          "set only by %s" % ("drdnsd" if n in fa else "NSD")))
    if (a["edns"] >= 0) != (b["edns"] >= 0):
        diffs.append(("edns.present", "drdnsd %s, NSD %s" % (a["edns"] >= 0, b["edns"] >= 0)))
    elif a["edns"] >= 0:
        ede_a = [o for o in a["edns.options"] if o.startswith("EDE")]
        ede_b = [o for o in b["edns.options"] if o.startswith("EDE")]
        if ede_a != ede_b:
            diffs.append(("edns.ede", "drdnsd %s, NSD %s" % (ede_a, ede_b)))
        a = dict(a, **{"edns.options": [o for o in a["edns.options"] if o not in ede_a]})
        b = dict(b, **{"edns.options": [o for o in b["edns.options"] if o not in ede_b]})
        for f in ["edns", "edns.do", "edns.options", "edns.payload"]:
            if a[f] != b[f]:
                diffs.append((f if f != "edns" else "edns.version",
                              "drdnsd %s, NSD %s" % (a[f], b[f])))
    tc = "@tc" if "TC" in fa and "TC" in fb else ""
    qname = b["question"][0].split()[0].lower() if b["question"] else None
    for sec in SECTIONS:
        da, db = a[sec], b[sec]
        lower_a = {(k[0].lower(),) + k[1:]: k for k in da}
        lower_b = {(k[0].lower(),) + k[1:]: k for k in db}
        for lk, k in sorted(lower_b.items()):
            if lk not in lower_a:
                diffs.append((sec + ".missing" + tc, key_text(k)))
        for lk, k in sorted(lower_a.items()):
            if lk not in lower_b:
                diffs.append((sec + ".extra" + tc, key_text(k)))
        for lk in sorted(set(lower_a) & set(lower_b)):
            ka, kb = lower_a[lk], lower_b[lk]
            if ka != kb:
                # the question's name keeps its case (RFC 4343 4.1); other
                # owners' case may come from name compression
                which = ".qname-case" if lk[0] == qname else ".case"
                diffs.append((sec + which + tc, "drdnsd %s, NSD %s" % (ka[0], kb[0])))
            (ta, ra), (tb, rb) = da[ka], db[kb]
            if ta != tb:
                diffs.append((sec + ".ttl" + tc, "%s: drdnsd %d, NSD %d" % (key_text(kb), ta, tb)))
            if ra != rb:
                same = {x.lower() for x in ra} == {x.lower() for x in rb}
                diffs.append((sec + (".rdata-case" if same else ".rdata") + tc,
                              "%s: drdnsd %s, NSD %s" % (key_text(kb), sorted(ra - rb)[:3],
                                                        sorted(rb - ra)[:3])))
    return diffs


class Validator:
    """RRSIG validation with the zones' DNSKEY sets, results cached."""

    def __init__(self, zones):
        self.keys = {}
        for z in zones:
            if z.keys:
                self.keys[z.origin] = z.keys[z.origin]
        self.cache = {}
        self.lock = threading.Lock()

    def check(self, msg, qtype):
        """[(detail)] of the signatures in msg that do not validate.  An RRSIG
        needs its RRset beside it, except in the answer to an RRSIG query."""
        bad = []
        if isinstance(msg, str) or not self.keys:
            return bad
        now = time.time()
        for sec in SECTIONS:
            rrsets = getattr(msg, sec)
            for sigs in rrsets:
                if sigs.rdtype != dns.rdatatype.RRSIG:
                    continue
                covered = None
                for r in rrsets:
                    if r.name == sigs.name and r.rdtype == sigs.covers and r.rdclass == sigs.rdclass:
                        covered = r
                if covered is None and sec == "answer" and qtype == "RRSIG":
                    continue
                if covered is None:
                    bad.append("%s: RRSIG(%s) %s without the RRset" % (
                        sec, dns.rdatatype.to_text(sigs.covers), sigs.name))
                    continue
                signer = next(iter(sigs)).signer
                if signer not in self.keys:
                    bad.append("%s: RRSIG %s by unknown signer %s" % (sec, sigs.name, signer))
                    continue
                ck = (covered.to_text(), sigs.to_text())
                with self.lock:
                    res = self.cache.get(ck)
                if res is None:
                    try:
                        dns.dnssec.validate(covered, sigs, {signer: self.keys[signer]}, now=now)
                        res = ""
                    except dns.dnssec.ValidationFailure as e:
                        res = str(e) or "validation failure"
                    with self.lock:
                        self.cache[ck] = res
                if res:
                    bad.append("%s: %s %s: %s" % (sec, covered.name,
                                                  dns.rdatatype.to_text(covered.rdtype), res))
        return bad


# --------------------------------------------------------------------------
# allowlist


class Entry:
    def __init__(self, line, lineno):
        head, sep, reason = line.partition(" | ")  # (a regex may hold "|")
        parts = head.split()
        if not sep or len(parts) != 3 or not reason.strip():
            raise ValueError("allowlist line %d: want 'ID QUERY-REGEX FIELD-REGEX | reason'" % lineno)
        self.id, q, f = parts
        self.query = re.compile(q)
        self.field = re.compile(f)
        self.reason = reason.strip()
        self.count = 0

    def matches(self, qdesc, field, detail):
        # a FIELD-REGEX with ":" is matched against "field:detail", e.g.
        # "authority.missing:x.example. IN NSEC3"
        target = field + ":" + detail if ":" in self.field.pattern else field
        return bool(self.query.search(qdesc)) and bool(self.field.fullmatch(target))


def load_allowlist(path):
    entries = []
    if not path:
        return entries
    with open(path) as fh:
        for i, line in enumerate(fh, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            entries.append(Entry(line, i))
    return entries


# --------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--per-variant", type=int, default=2000)
    ap.add_argument("--show", type=int, default=20)
    ap.add_argument("--allowlist")
    ap.add_argument("--zones", required=True, help="zone names, space separated")
    ap.add_argument("--report", help="write every difference here")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("targets", nargs="+", metavar="VARIANT=DRDNS,NSD,ZONEDIR")
    args = ap.parse_args()
    try:
        allow = load_allowlist(args.allowlist)
    except (OSError, ValueError, re.error) as e:
        print("compare.py: %s" % e, file=sys.stderr)
        return 2

    totals = {"compared": 0, "identical": 0, "allowlisted": 0, "differ": 0}
    invalid = {"drdnsd": 0, "NSD": 0}
    fields = {}       # field -> [count, example query]
    shown = 0
    report = open(args.report, "w") if args.report else None
    t0 = time.time()
    for target in args.targets:
        try:
            variant, rest = target.split("=", 1)
            dr, nsd, zdir = rest.split(",", 2)
        except ValueError:
            print("compare.py: bad target %r" % target, file=sys.stderr)
            return 2
        zones = [Zone(z, "%s/%s.zone" % (zdir, z)) for z in args.zones.split()]
        rng = random.Random("%d:%s" % (args.seed, variant))
        queries = corpus(zones, rng, args.per_variant)
        mix = {}
        for q in queries:
            mix[q[3]] = mix.get(q[3], 0) + 1
        print("differential: %-8s corpus %d queries: %s; DO %d, 0x20 case %d, CHAOS %d" % (
            variant, len(queries), ", ".join("%s %d" % kv for kv in sorted(mix.items())),
            sum(1 for q in queries if q[4]),
            sum(1 for q in queries if q[0] != q[0].lower()),
            sum(1 for q in queries if q[2] == "CH")))
        validator = Validator(zones)

        def run(q):
            ra, rb = ask(q, dr), ask(q, nsd)
            return q, ra, rb

        counts = {"compared": 0, "identical": 0, "allowlisted": 0, "differ": 0}
        with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
            results = list(pool.map(run, queries))
        for q, ra, rb in results:
            qd = describe(q)
            diffs = compare(norm(ra), norm(rb))
            if q[4]:
                for who, msg in (("drdnsd", ra), ("NSD", rb)):
                    bad = validator.check(msg, q[1])
                    if bad:
                        invalid[who] += 1
                        diffs.append(("rrsig.invalid", "%s: %s" % (who, "; ".join(bad[:3]))))
            counts["compared"] += 1
            if not diffs:
                counts["identical"] += 1
                continue
            matched = set()
            unexplained = []
            for field, detail in diffs:
                hit = None
                if field != "rrsig.invalid":
                    hit = next((e for e in allow if e.matches(qd, field, detail)), None)
                if hit:
                    matched.add(hit)
                else:
                    unexplained.append((field, detail))
                f = fields.setdefault(field if not hit else field + " [" + hit.id + "]",
                                      [0, variant + ": " + qd])
                f[0] += 1
            if not unexplained:
                counts["allowlisted"] += 1
                for e in matched:
                    e.count += 1
                continue
            counts["differ"] += 1
            text = ["--- %s: %s" % (variant, qd)]
            text += ["  %s: %s" % fd for fd in unexplained]
            for who, msg in (("drdnsd", ra), ("NSD", rb)):
                body = msg if isinstance(msg, str) else msg.to_text()
                text.append("  ==== %s" % who)
                text += ["    " + line for line in body.splitlines() if not line.startswith("id ")]
            if report:
                report.write("\n".join(text) + "\n")
            if shown < args.show:
                print("\n".join(text))
                shown += 1
        print("differential: %-8s %5d compared, %5d identical, %5d allowlisted, %5d differ" % (
            variant, counts["compared"], counts["identical"], counts["allowlisted"], counts["differ"]))
        for k in totals:
            totals[k] += counts[k]
    print("differential: total    %5d compared, %5d identical, %5d allowlisted, %5d differ (%.1f s)" % (
        totals["compared"], totals["identical"], totals["allowlisted"], totals["differ"],
        time.time() - t0))
    for e in allow:
        print("differential: allowlist %-16s %5d  (%s)" % (e.id, e.count, e.reason))
    print("differential: RRSIG validation failures: drdnsd %d, NSD %d" % (invalid["drdnsd"], invalid["NSD"]))
    if fields:
        print("differential: differences by field (queries; an example):")
        for f, (n, ex) in sorted(fields.items(), key=lambda kv: -kv[1][0]):
            print("  %6d  %-28s %s" % (n, f, ex))
    if report:
        report.close()
    return 0 if totals["differ"] == 0 and not any(invalid.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
