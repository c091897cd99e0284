#include "drdns/error.h"

#include <string.h>

const char *drdns_strerror(int err)
{
	switch (err) {
	case DRDNS_OK: return "success";
	case DRDNS_ENOMEM: return "out of memory";
	case DRDNS_EINVAL: return "invalid argument";
	case DRDNS_EIO: return "input/output error";
	case DRDNS_ECONF: return "invalid configuration";
	case DRDNS_EZONE: return "invalid zone file";
	case DRDNS_ESERIAL: return "no safe serial (RFC 1982 comparison undefined)";
	case DRDNS_ETIMEOUT: return "timed out";
	case DRDNS_ENET: return "network error";
	case DRDNS_ETSIG: return "TSIG failure";
	case DRDNS_EREFUSED: return "refused by a safety check";
	case DRDNS_ESTATE: return "persisted state unreadable or inconsistent";
	case DRDNS_EPROTO: return "protocol error";
	case DRDNS_EBUSY: return "another operation is in progress";
	case DRDNS_ENOZONE: return "zone not served";
	case DRDNS_EDNSSEC: return "DNSSEC keys or signing failed";
	default: break;
	}
	if (err < 0 && err > -1000)
		return strerror(-err);
	return "unknown error";
}
