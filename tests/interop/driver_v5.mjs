// One libsignal-client 0.103.0 party (protocol version 4: PQXDH with
// Kyber1024, and SPQR always on), driven by JSON lines on stdin; answers on
// stdout.  The oracle for signalish's SPQR work; every byte value is hex.
//
// The package is installed under the npm alias "libsignal-v5" (see
// package.json) beside 0.72.1 (driver.mjs) and 0.90.0 (driver_v4.mjs,
// "libsignal-v4").  libsignal is used only through its public JS API and
// .d.ts.  The stores and most commands are driver_common.mjs, shared with
// driver_v4.mjs.
//
// Protocol: as driver_v4.mjs.  Request {"cmd": NAME, ...arguments}; answer
// {"ok": true, ...result} or {"ok": false, "error": MESSAGE}.
//
// Differences from driver_v4.mjs
// ------------------------------
// 0.103.0's processPreKeyBundle, signalEncrypt, signalDecrypt and
// signalDecryptPreKey take a localAddress (our own address) after the remote
// one, so every party has a local address and every command that names a peer
// takes an address spec:
//
//   ADDRESS = "bob"                         name "bob", device 1
//           | {"name": "bob", "device_id": 3}
//           | {"aci": UUID, "device_id": 3}  ProtocolAddress.new(Aci.fromUuid(UUID), 3)
//           | {"pni": UUID, "device_id": 3}  ProtocolAddress.new(Pni.fromUuid(UUID), 3)
//   device_id defaults to 1 and must be 1..127.  A name that parses as a
//   service id string ("<uuid>" or "PNI:<uuid>") is a service id to
//   libsignal: {"name": UUID} and {"aci": UUID} are the same address.
//
// Sessions and identities are keyed by ProtocolAddress.toString()
// ("name.device"; a service id's name is its service id string).
//
// 0.103.0 writes SignalMessage field 6 (36 bytes: sender service id,
// fixed-width 17 bytes, sender device, recipient service id, recipient device)
// in the SignalMessage inside a PreKeySignalMessage, and only when both the
// local address given to signalEncrypt and the remote address are service ids;
// with a plain name on either side field 6 is left out.  A received PreKey
// message with field 6 must name (remote, local) as given to decrypt, both
// service ids, or it is refused as "invalid PreKey message: decryption failed"
// (code 0; the log says "Address mismatch" or "Locally supplied addresses not
// valid Service IDs").  Bare SignalMessages are not checked against addresses.
// (test_v5_driver.py pins all of this.)
//
// Commands (arguments -> result); those of driver_v4.mjs keep their meaning:
//   init {registration_id, local = "libsignal"}  -> {identity, local: ADDRESS_INFO}
//       `local` is the party's own address, used whenever a command has no
//       `local` of its own.
//   make_bundle {registration_id, signed_prekey_id, prekey_id|null,
//                kyber_prekey_id, last_resort=false, device_id?}
//       -> the fields of driver_v4.mjs; device_id is the argument, else the
//          local address's device id.
//   process_bundle {address, local?, ...make_bundle's fields}     -> {}
//   encrypt {address, local?, plaintext}                          -> {type, body}
//   decrypt {address, local?, type, body}                         -> {plaintext}
//   encrypt_bulk {address, local?, text, count, keep}             -> {messages}
//   decrypt_each {address, local?, messages, keep_state}          -> {results}
//       `address` is the remote party, `local` overrides our own address for
//       this call only (to encrypt or decrypt with explicit local and remote
//       addresses).
//   delete_session {address} / session_record {address} / session_info {address}
//       as driver_v4.mjs; session_record is the dump of the record
//       (SessionRecord.serialize(), hex) or null.
//   verify, sign, fingerprint, compare_scannable, stored_prekeys,
//   dem_for_original, dem_parse, plaintext_content, plaintext_content_parse
//       as driver_v4.mjs.
// New:
//   address_info {address}
//       -> {name, device_id, string, service_id|null, kind: "aci"|"pni"|null,
//           fixed_width: hex of ServiceId.getServiceIdFixedWidthBinary() (17
//           bytes: kind byte 0x00 ACI / 0x01 PNI, then the UUID) | null}
//   set_session_record {address, record: hex | null}  -> {}
//       Puts a record (checked with SessionRecord.deserialize) in the session
//       store, or removes it (null): to take a party back to a dumped state.
//   private_keys {}
//       -> {identity, prekeys: [{id, private}], signed_prekeys: [{id, private}],
//           kyber_prekeys: [{id, secret}]}
//       Serialized private keys (PrivateKey.serialize(), KEMSecretKey.serialize())
//       for key-schedule checks.
//
// Log capture: any request may carry "logs": true | "error" | "warn" | "info" |
// "debug" | "trace" (true = "trace").  The answer (also a failed one) then has
// logs: [{level, target, file, line, message}], the lines libsignal logged
// during that command at that level or more severe, in order.  The first such
// request installs libsignal's logger with initLogger (once per process: a
// later initLogger is ignored by libsignal); requests without "logs" keep
// nothing; lines of the logger itself (target signal_node::logging) are left
// out.  The prebuilt 0.103.0 was seen to emit error, warn and info lines, no
// debug or trace ones (for example "spqr v1.send_ek.send epoch 1:
// KeysUnsampled -> KeysSampled", or a warning "Address mismatch: ..." before a
// refused PreKey message).
import * as S from 'libsignal-v5';
import { bytes, hex, partyCommands, serve } from './driver_common.mjs';

const DEFAULT_LOCAL = 'libsignal';

function toAddress(spec) {
  if (typeof spec === 'string') return S.ProtocolAddress.new(spec, 1);
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
    throw new Error(`an address is a name or {name|aci|pni, device_id}, not ${JSON.stringify(spec)}`);
  }
  const kinds = ['name', 'aci', 'pni'].filter((k) => spec[k] !== undefined);
  const unknown = Object.keys(spec).filter((k) => !['name', 'aci', 'pni', 'device_id'].includes(k));
  if (kinds.length !== 1 || unknown.length) {
    throw new Error(`an address needs exactly one of name, aci, pni (and device_id): ${JSON.stringify(spec)}`);
  }
  const device = spec.device_id ?? 1;
  if (spec.aci !== undefined) return S.ProtocolAddress.new(S.Aci.fromUuid(spec.aci), device);
  if (spec.pni !== undefined) return S.ProtocolAddress.new(S.Pni.fromUuid(spec.pni), device);
  return S.ProtocolAddress.new(spec.name, device);
}

function addressInfo(address) {
  const id = address.serviceId();
  return { name: address.name(), device_id: address.deviceId(), string: address.toString(),
           service_id: id ? id.getServiceIdString() : null,
           kind: id ? (id instanceof S.Pni ? 'pni' : 'aci') : null,
           fixed_width: id ? hex(id.getServiceIdFixedWidthBinary()) : null };
}

let localDefault = null;           // the party's own address (init)
const localOf = (request) => {
  if (request.local !== undefined && request.local !== null) return toAddress(request.local);
  if (!localDefault) throw new Error('init first');
  return localDefault;
};

const { commands: shared, party } = partyCommands(S, {
  remote: (request, field) => {
    if (request[field] === undefined) throw new Error(`${request.cmd} needs ${field}`);
    return toAddress(request[field]);
  },
  local: (request) => [localOf(request)],
  deviceId: (request) => request.device_id ?? localOf(request).deviceId(),
  init: (request) => {
    localDefault = toAddress(request.local ?? DEFAULT_LOCAL);
    return { local: addressInfo(localDefault) };
  },
});

const commands = {
  ...shared,
  address_info({ address }) { return addressInfo(toAddress(address)); },
  set_session_record({ address, record }) {
    const key = toAddress(address).toString();
    if (record === null || record === undefined) party().sessions.records.delete(key);
    else party().sessions.records.set(key, S.SessionRecord.deserialize(bytes(record)).serialize());
    return {};
  },
  private_keys() {
    const me = party();
    return { identity: hex(me.pair.privateKey.serialize()),
             prekeys: [...me.prekeys.keys].map(([id, r]) => ({ id, private: hex(r.privateKey().serialize()) })),
             signed_prekeys: [...me.signed.keys].map(([id, r]) => ({ id, private: hex(r.privateKey().serialize()) })),
             kyber_prekeys: [...me.kyber.keys].map(([id, { record }]) =>
               ({ id, secret: hex(record.secretKey().serialize()) })) };
  },
};

// Log capture (see above).
const LEVELS = { error: 1, warn: 2, info: 3, debug: 4, trace: 5 };
const LEVEL_NAMES = Object.fromEntries(Object.entries(LEVELS).map(([name, n]) => [n, name]));
let capture = null;                // {max, lines} while a request captures
let loggerInstalled = false;

function logLevel(value) {
  if (value === true) return LEVELS.trace;
  if (typeof value === 'string' && LEVELS[value.toLowerCase()] !== undefined) return LEVELS[value.toLowerCase()];
  throw new Error(`logs is true or one of ${Object.keys(LEVELS).join(', ')}, not ${JSON.stringify(value)}`);
}

async function around(request, run) {
  if (request.logs === undefined || request.logs === false || request.logs === null) return run();
  let max;
  try { max = logLevel(request.logs); } catch (error) { return { ok: false, error: String(error.message) }; }
  if (!loggerInstalled) {
    S.initLogger(S.LogLevel.Trace, (level, target, file, line, message) => {
      // The logger's own lines (target signal_node::logging, such as
      // "Initializing libsignal version:0.103.0", which reaches this callback
      // only with the next line logged) are about the driver, not a command.
      if (capture && level <= capture.max && target !== 'signal_node::logging') {
        capture.lines.push({ level: LEVEL_NAMES[level] ?? String(level), target, file, line, message });
      }
    });
    loggerInstalled = true;
  }
  capture = { max, lines: [] };
  try {
    const answer = await run();
    await new Promise((resolve) => setImmediate(resolve));   // lines logged just before the answer
    return { ...answer, logs: capture.lines };
  } finally {
    capture = null;
  }
}

await serve(commands, around);
