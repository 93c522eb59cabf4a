"""fsutil's packet types (tonistiigi/fsutil types/wire.proto, Packet.PacketType), apart from
the receiver so that the sending CLI does not import it (and the builder's digests)."""

PACKET_STAT = 0
PACKET_REQ = 1
PACKET_DATA = 2
PACKET_FIN = 3
PACKET_ERR = 4
