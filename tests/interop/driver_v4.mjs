// One libsignal-client 0.90.0 party (protocol version 4: PQXDH with Kyber1024),
// driven by JSON lines on stdin; answers on stdout.  Written for signalish's
// interoperability tests; every byte value is hex.  Same protocol and command
// names as driver.mjs where they apply.  The stores and the commands live in
// driver_common.mjs, which driver_v5.mjs (0.103.0) shares.
//
// The package is installed under the npm alias "libsignal-v4" (see
// package.json) so that 0.72.1 (driver.mjs) and 0.90.0 live in one
// node_modules.  libsignal is used only through its public API.
//
// Request: {"cmd": NAME, ...arguments}.  Answer: {"ok": true, ...result} or
// {"ok": false, "error": MESSAGE}.
//
// Commands (arguments -> result):
//   init {registration_id}                     -> {identity}
//   make_bundle {registration_id, signed_prekey_id, prekey_id|null,
//                kyber_prekey_id, last_resort=false}
//       -> {registration_id, device_id, prekey_id|null, prekey|null,
//           signed_prekey_id, signed_prekey, signature, identity,
//           kyber_prekey_id, kyber_prekey (0x08 || 1568 bytes), kyber_signature,
//           last_resort}
//       A signed prekey or Kyber prekey whose id is already stored is reused
//       (so several bundles can share one), a new one is made otherwise.
//   process_bundle {address, ...the fields make_bundle returns; kyber_* required}
//                                              -> {}
//   encrypt {address, plaintext}               -> {type, body}
//   decrypt {address, type, body}              -> {plaintext}
//   encrypt_bulk {address, text, count, keep}  -> {messages: [{index, type, body}]}
//   decrypt_each {address, messages: [{type, body}], keep_state}
//       -> {results: [{ok, plaintext} | {ok: false, stage, error, code}]}
//       Every attempt is undone unless keep_state (sessions, identities and
//       all three prekey stores, including the Kyber store's used-key memory).
//   verify {key, message, signature}           -> {valid}
//   sign {message}                             -> {signature}
//   fingerprint / compare_scannable            as driver.mjs
//   stored_prekeys {}
//       -> {prekeys: [id], signed_prekeys: [id], kyber_prekeys: [{id, last_resort}],
//           used_last_resort: N}
//       What the prekey stores hold (one-time keys vanish when used) and how
//       many (kyber id, signed prekey id, base key) triples were seen.
//   delete_session {address}                   -> {deleted}
//       Forgets the session with `address` but keeps every prekey store: the
//       state a replayed PreKeySignalMessage meets on a party that lost (or
//       never had) the session it created.
//   session_record {address}  -> {record: hex of SessionRecord.serialize() | null}
//   session_info {address}
//       -> {exists, has_current, current_fields, spqr, spqr_bytes, previous}
//       A decoding of the record (see below).
//   Decryption error messages (tests/interop/test_recovery_interop.py); they
//   need no init:
//   dem_for_original {body, type, timestamp, device_id} -> {dem}
//       DecryptionErrorMessage.forOriginal(body, type, timestamp, device_id).serialize()
//   dem_parse {dem} -> {serialized, timestamp, device_id, ratchet_key|null}
//       DecryptionErrorMessage.deserialize and its getters (ratchet_key 0x05 || 32)
//   plaintext_content {dem} -> {content, body, type, ciphertext}
//       PlaintextContent.from(deserialized dem): serialize(), body(), and
//       asCiphertextMessage()'s type() and serialize()
//   plaintext_content_parse {content}
//       -> {body, dem, timestamp, device_id, ratchet_key|null}
//       PlaintextContent.deserialize(content).body(), then
//       DecryptionErrorMessage.extractFromSerializedBody(body)
//
// KyberPreKeyStore rule (what an application is expected to do):
// markKyberPreKeyUsed(id, signedPreKeyId, baseKey) deletes a one-time Kyber
// prekey; a last-resort one stays, but the triple (id, signed prekey id, base
// key) is remembered and a repeat of a triple already seen is refused by
// throwing, which makes the decryption fail.
//
// Observing SPQR (sparse post-quantum ratchet).  0.90.0 always offers SPQR:
// its SignalMessages carry protobuf field 5 (pq_ratchet).  If the peer never
// sends field 5, 0.90.0 drops SPQR for the whole session.  SessionRecord's
// serialization is a protobuf whose field 1 is the current session state and
// field 2 (repeated) the previous ones; inside the session state field 15 is
// the SPQR state, absent when SPQR is off.  Observed with 0.90.0 (and 0.79.0
// with UsePQRatchet) in /work/exp/v4 and by this driver's tests:
//   * 0.90.0 initiates: field 15 present from process_bundle on (about 100
//     bytes, about 3.8 kB once it has sent a message); it stays present once the peer replies with field 5, and disappears
//     (session_info.spqr === false) when the peer's first reply lacks field 5;
//     0.90.0's later SignalMessages then have no field 5.
//   * 0.90.0 receives a PreKeySignalMessage whose inner SignalMessage lacks
//     field 5: the session it creates has no field 15 from the start.
// So, to see what 0.90.0 does with a peer (signalish) that sends no field 5:
// run a conversation, then call session_info for that peer and check `spqr`,
// and walk the protobuf of 0.90.0's next SignalMessage for field 5.
import * as S from 'libsignal-v4';
import { partyCommands, serve } from './driver_common.mjs';

// Every address is a plain name with device id 1; 0.90.0's session functions
// take no localAddress.
const { commands } = partyCommands(S, {
  remote: (request, field) => S.ProtocolAddress.new(request[field], 1),
  local: () => [],
  deviceId: () => 1,
});

await serve(commands);
