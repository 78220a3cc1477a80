"""OCPI 2.2.1 HTTP connector: versions, credentials handshake, module senders/receivers, client and partner store."""
