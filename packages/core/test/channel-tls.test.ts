// The channel's tests again, every connection over TLS: the socket runs in stream mode (its bytes
// travel over a TLSSocket swapped at each reconnect) and must behave the same.
process.env.OC_CORE_TEST_TLS = "1";
require("./channel.test");
