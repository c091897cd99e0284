/*
 * drdns error codes.
 *
 * Every drdns function that can fail returns int: 0 on success, or a negative
 * value.  Values in (-1000, 0) are negated errno values (for example from
 * libuv, which uses the same convention); drdns's own codes start at -1000.
 * drdns_strerror() gives the text for either kind.
 */
#ifndef DRDNS_ERROR_H
#define DRDNS_ERROR_H

enum drdns_error {
	DRDNS_OK = 0,
	DRDNS_ENOMEM = -1000, /* out of memory */
	DRDNS_EINVAL,         /* invalid argument or value */
	DRDNS_EIO,            /* file or socket I/O failed */
	DRDNS_ECONF,          /* configuration is invalid */
	DRDNS_EZONE,          /* a DR zone file is invalid */
	DRDNS_ESERIAL,        /* no safe serial exists (RFC 1982 comparison undefined) */
	DRDNS_ETIMEOUT,       /* no answer in time */
	DRDNS_ENET,           /* network error */
	DRDNS_ETSIG,          /* TSIG key invalid or signature check failed */
	DRDNS_EREFUSED,       /* refused by a safety check */
	DRDNS_ESTATE,         /* persisted state is unreadable or inconsistent */
	DRDNS_EPROTO,         /* protocol error (DNS or control) */
	DRDNS_EBUSY,          /* another operation is in progress */
	DRDNS_ENOZONE,        /* zone not served */
	DRDNS_EDNSSEC,        /* DNSSEC keys or signing failed */
};

/* Text for a drdns error code or a negated errno value.  Never NULL. */
const char *drdns_strerror(int err);

#endif
