// The parts of a libsignal-client party that do not depend on the version:
// in-memory stores, the JSON-lines loop and the commands that driver_v4.mjs
// (0.90.0) and driver_v5.mjs (0.103.0) share.  Each driver passes its own
// libsignal module `S` and the few things that differ (how an address is
// written, the localAddress argument of the session functions); the command
// list and the store rules are documented in driver_v4.mjs, and driver_v5.mjs
// lists what it adds.  driver.mjs (0.72.1, protocol version 3, no Kyber) does
// not use this module.
//
// libsignal is used only through its public JS API and .d.ts.
import * as readline from 'node:readline';

export const hex = (b) => Buffer.from(b).toString('hex');
const unhex = (h) => Buffer.from(h, 'hex');
// libsignal (0.90 and later) wants Uint8Array<ArrayBuffer>; a Buffer from the
// pool is a view into a larger ArrayBuffer, so copy it into one of its own.
export const bytes = (h) => new Uint8Array(unhex(h));

export const describe = (error) => ({ error: String(error && error.message || error),
                                      code: error && error.code !== undefined ? String(error.code) : null });

// Protobuf wire format, just enough to list a message's fields.
export function protobufFields(buf) {
  const out = [];
  let i = 0;
  const varint = () => {
    let value = 0n, shift = 0n;
    for (;;) {
      if (i >= buf.length) throw new Error('truncated varint');
      const c = buf[i++];
      value |= BigInt(c & 0x7f) << shift;
      shift += 7n;
      if (!(c & 0x80)) return value;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const field = key >>> 3, wire = key & 7;
    let value;
    if (wire === 0) value = varint();
    else if (wire === 1) { value = buf.subarray(i, i + 8); i += 8; }
    else if (wire === 2) { const n = Number(varint()); value = buf.subarray(i, i + n); i += n; }
    else if (wire === 5) { value = buf.subarray(i, i + 4); i += 4; }
    else throw new Error(`wire type ${wire}`);
    if (i > buf.length) throw new Error('truncated field');
    out.push({ field, wire, value });
  }
  return out;
}

// The store classes of one libsignal module.  Sessions and identities are
// keyed by ProtocolAddress.toString() ("name.device").
export function storeClasses(S) {
  class Sessions extends S.SessionStore {
    records = new Map();
    async saveSession(address, record) { this.records.set(address.toString(), record.serialize()); }
    async getSession(address) {
      const data = this.records.get(address.toString());
      return data ? S.SessionRecord.deserialize(data) : null;
    }
    async getExistingSessions(addresses) { return Promise.all(addresses.map((a) => this.getSession(a))); }
  }

  class Identities extends S.IdentityKeyStore {
    constructor(pair, registrationId) { super(); this.pair = pair; this.registrationId = registrationId; this.known = new Map(); }
    async getIdentityKey() { return this.pair.privateKey; }
    async getLocalRegistrationId() { return this.registrationId; }
    async saveIdentity(address, key) {
      const before = this.known.get(address.toString());
      const now = Buffer.from(key.serialize());
      this.known.set(address.toString(), now);
      return before && !before.equals(now) ? S.IdentityChange.ReplacedExisting : S.IdentityChange.NewOrUnchanged;
    }
    async isTrustedIdentity(address, key) {
      const known = this.known.get(address.toString());
      return !known || known.equals(Buffer.from(key.serialize()));
    }
    async getIdentity(address) {
      const known = this.known.get(address.toString());
      return known ? S.PublicKey.deserialize(new Uint8Array(known)) : null;
    }
  }

  class PreKeys extends S.PreKeyStore {
    keys = new Map();
    async savePreKey(id, record) { this.keys.set(id, record); }
    async getPreKey(id) { const r = this.keys.get(id); if (!r) throw new Error(`no prekey ${id}`); return r; }
    async removePreKey(id) { this.keys.delete(id); }
  }

  class SignedPreKeys extends S.SignedPreKeyStore {
    keys = new Map();
    async saveSignedPreKey(id, record) { this.keys.set(id, record); }
    async getSignedPreKey(id) { const r = this.keys.get(id); if (!r) throw new Error(`no signed prekey ${id}`); return r; }
  }

  // markKyberPreKeyUsed deletes a one-time Kyber prekey; a last-resort one
  // stays, but the triple (id, signed prekey id, base key) is remembered and a
  // repeat of a triple already seen is refused by throwing.
  class KyberPreKeys extends S.KyberPreKeyStore {
    keys = new Map();          // id -> { record, lastResort }
    used = new Set();          // "kyberId:signedId:baseKeyHex" for last-resort keys
    async saveKyberPreKey(id, record, lastResort = false) { this.keys.set(id, { record, lastResort }); }
    async getKyberPreKey(id) {
      const entry = this.keys.get(id);
      if (!entry) throw new Error(`no kyber prekey ${id}`);
      return entry.record;
    }
    async markKyberPreKeyUsed(id, signedPreKeyId, baseKey) {
      const entry = this.keys.get(id);
      if (!entry) throw new Error(`no kyber prekey ${id}`);
      if (!entry.lastResort) { this.keys.delete(id); return; }
      const triple = `${id}:${signedPreKeyId}:${hex(baseKey.serialize())}`;
      if (this.used.has(triple)) {
        throw new Error(`last-resort kyber prekey ${id} reused with signed prekey ${signedPreKeyId} and the same base key`);
      }
      this.used.add(triple);
    }
  }

  return { Sessions, Identities, PreKeys, SignedPreKeys, KyberPreKeys };
}

// One party and the shared commands.  `options`:
//   remote(request, field)  -> ProtocolAddress named by request[field]
//   local(request)          -> [] (0.90.0: no localAddress) or [ProtocolAddress]:
//                              spliced in after the remote address of every
//                              session function
//   deviceId(request)       -> the device id make_bundle puts in a bundle
//   init(request)           -> extra fields of init's answer (optional; it
//                              runs before the new party is made)
// Returns { commands, party } where party() is the current party (null
// before init).
export function partyCommands(S, options) {
  const { Sessions, Identities, PreKeys, SignedPreKeys, KyberPreKeys } = storeClasses(S);
  const { remote, local, deviceId } = options;
  let me = null;

  // Everything a decryption can change lives in these maps; copying them is a
  // snapshot of the whole party, and putting the copies back undoes an attempt.
  const snapshot = () => ({ sessions: new Map(me.sessions.records), known: new Map(me.identities.known),
                            prekeys: new Map(me.prekeys.keys), signed: new Map(me.signed.keys),
                            kyber: new Map(me.kyber.keys), used: new Set(me.kyber.used) });
  const restore = (s) => {
    me.sessions.records = new Map(s.sessions); me.identities.known = new Map(s.known);
    me.prekeys.keys = new Map(s.prekeys); me.signed.keys = new Map(s.signed);
    me.kyber.keys = new Map(s.kyber); me.kyber.used = new Set(s.used);
  };

  async function decryptMessage(request, type, data) {
    return type === S.CiphertextMessageType.PreKey
      ? S.signalDecryptPreKey(S.PreKeySignalMessage.deserialize(data), remote(request, 'address'),
          ...local(request), me.sessions, me.identities, me.prekeys, me.signed, me.kyber)
      : S.signalDecrypt(S.SignalMessage.deserialize(data), remote(request, 'address'), ...local(request),
          me.sessions, me.identities);
  }

  async function decryptOne(request, type, data) {
    try {
      if (type === S.CiphertextMessageType.PreKey) S.PreKeySignalMessage.deserialize(data);
      else S.SignalMessage.deserialize(data);
    } catch (error) { return { ok: false, stage: 'deserialize', ...describe(error) }; }
    try {
      return { ok: true, plaintext: hex(await decryptMessage(request, type, data)) };
    } catch (error) { return { ok: false, stage: 'decrypt', ...describe(error) }; }
  }

  const encryptOne = (request, plaintext) =>
    S.signalEncrypt(plaintext, remote(request, 'address'), ...local(request), me.sessions, me.identities);

  const recordOf = (request) => me.sessions.records.get(remote(request, 'address').toString());

  const commands = {
    init(request) {
      const extra = options.init ? options.init(request) : {};
      const pair = S.IdentityKeyPair.generate();
      me = { pair, sessions: new Sessions(), identities: new Identities(pair, request.registration_id),
             prekeys: new PreKeys(), signed: new SignedPreKeys(), kyber: new KyberPreKeys() };
      return { identity: hex(pair.publicKey.serialize()), ...extra };
    },
    async make_bundle(request) {
      const { registration_id, signed_prekey_id, prekey_id = null, kyber_prekey_id, last_resort = false } = request;
      if (!Number.isInteger(kyber_prekey_id)) throw new Error('make_bundle needs kyber_prekey_id');
      let spk = me.signed.keys.get(signed_prekey_id);
      if (!spk) {
        const key = S.PrivateKey.generate();
        const signature = me.pair.privateKey.sign(key.getPublicKey().serialize());
        spk = S.SignedPreKeyRecord.new(signed_prekey_id, Date.now(), key.getPublicKey(), key, signature);
        await me.signed.saveSignedPreKey(signed_prekey_id, spk);
      }
      let kyber = me.kyber.keys.get(kyber_prekey_id);
      if (!kyber) {
        const pair = S.KEMKeyPair.generate();
        const signature = me.pair.privateKey.sign(pair.getPublicKey().serialize());
        await me.kyber.saveKyberPreKey(kyber_prekey_id,
          S.KyberPreKeyRecord.new(kyber_prekey_id, Date.now(), pair, signature), Boolean(last_resort));
        kyber = me.kyber.keys.get(kyber_prekey_id);
      } else if (kyber.lastResort !== Boolean(last_resort)) {
        throw new Error(`kyber prekey ${kyber_prekey_id} exists with last_resort=${kyber.lastResort}`);
      }
      let prekey = null;
      if (prekey_id !== null && prekey_id !== undefined) {
        const opk = S.PrivateKey.generate();
        await me.prekeys.savePreKey(prekey_id, S.PreKeyRecord.new(prekey_id, opk.getPublicKey(), opk));
        prekey = hex(opk.getPublicKey().serialize());
      }
      return { registration_id, device_id: deviceId(request), prekey_id: prekey === null ? null : prekey_id, prekey,
               signed_prekey_id, signed_prekey: hex(spk.publicKey().serialize()),
               signature: hex(spk.signature()), identity: hex(me.pair.publicKey.serialize()),
               kyber_prekey_id, kyber_prekey: hex(kyber.record.publicKey().serialize()),
               kyber_signature: hex(kyber.record.signature()), last_resort: kyber.lastResort };
    },
    async process_bundle(b) {
      for (const name of ['kyber_prekey_id', 'kyber_prekey', 'kyber_signature']) {
        if (b[name] === undefined || b[name] === null) throw new Error(`process_bundle needs ${name}`);
      }
      const bundle = S.PreKeyBundle.new(b.registration_id, b.device_id,
        b.prekey_id ?? null, b.prekey ? S.PublicKey.deserialize(bytes(b.prekey)) : null,
        b.signed_prekey_id, S.PublicKey.deserialize(bytes(b.signed_prekey)), bytes(b.signature),
        S.PublicKey.deserialize(bytes(b.identity)),
        b.kyber_prekey_id, S.KEMPublicKey.deserialize(bytes(b.kyber_prekey)), bytes(b.kyber_signature));
      await S.processPreKeyBundle(bundle, remote(b, 'address'), ...local(b), me.sessions, me.identities);
      return {};
    },
    async encrypt(request) {
      const message = await encryptOne(request, bytes(request.plaintext));
      return { type: message.type(), body: hex(message.serialize()) };
    },
    async decrypt(request) {
      return { plaintext: hex(await decryptMessage(request, request.type, bytes(request.body))) };
    },
    // Encrypts `count` messages ("<text><index>"), returns only those at `keep`.
    async encrypt_bulk(request) {
      const { text, count, keep } = request;
      const wanted = new Set(keep);
      const kept = [];
      for (let i = 0; i < count; i++) {
        const message = await encryptOne(request, new Uint8Array(Buffer.from(text + i)));
        if (wanted.has(i)) kept.push({ index: i, type: message.type(), body: hex(message.serialize()) });
      }
      return { messages: kept };
    },
    // Tries each message against the party as it is now, undoing every attempt
    // (unless keep_state): as if a fresh copy of the party tried each one.
    async decrypt_each(request) {
      const results = [];
      for (const { type, body } of request.messages) {
        const before = snapshot();
        results.push(await decryptOne(request, type, bytes(body)));
        if (!request.keep_state) restore(before);
      }
      return { results };
    },
    verify({ key, message, signature }) {
      return { valid: S.PublicKey.deserialize(bytes(key)).verify(bytes(message), bytes(signature)) };
    },
    sign({ message }) { return { signature: hex(me.pair.privateKey.sign(bytes(message))) }; },
    fingerprint({ iterations, version, local_id, local_key, remote_id, remote_key }) {
      const fp = S.Fingerprint.new(iterations, version, bytes(local_id),
        S.PublicKey.deserialize(bytes(local_key)), bytes(remote_id),
        S.PublicKey.deserialize(bytes(remote_key)));
      return { displayable: fp.displayableFingerprint().toString(),
               scannable: hex(fp.scannableFingerprint().toBuffer()) };
    },
    compare_scannable({ ours, theirs }) {
      try {
        return { match: S.ScannableFingerprint._fromBuffer(bytes(ours))
          .compare(S.ScannableFingerprint._fromBuffer(bytes(theirs))) };
      } catch (error) { return { match: null, error: String(error.message || error) }; }
    },
    stored_prekeys() {
      return { prekeys: [...me.prekeys.keys.keys()], signed_prekeys: [...me.signed.keys.keys()],
               kyber_prekeys: [...me.kyber.keys].map(([id, { lastResort }]) => ({ id, last_resort: lastResort })),
               used_last_resort: me.kyber.used.size };
    },
    delete_session(request) {
      return { deleted: me.sessions.records.delete(remote(request, 'address').toString()) };
    },
    session_record(request) {
      const data = recordOf(request);
      return { record: data ? hex(data) : null };
    },
    session_info(request) {
      const data = recordOf(request);
      if (!data) return { exists: false };
      const record = protobufFields(Buffer.from(data));
      const current = record.find((f) => f.field === 1);
      const state = current ? protobufFields(Buffer.from(current.value)) : [];
      const spqr = state.find((f) => f.field === 15);
      return { exists: true,
               has_current: S.SessionRecord.deserialize(data).hasCurrentState(),
               current_fields: [...new Set(state.map((f) => f.field))].sort((a, b) => a - b),
               spqr: spqr !== undefined, spqr_bytes: spqr ? spqr.value.length : 0,
               previous: record.filter((f) => f.field === 2).length };
    },
    // Decryption error messages; they need no init (see driver_v4.mjs).
    dem_for_original({ body, type, timestamp, device_id }) {
      const dem = S.DecryptionErrorMessage.forOriginal(bytes(body), type, timestamp, device_id);
      return { dem: hex(dem.serialize()) };
    },
    dem_parse({ dem }) {
      const parsed = S.DecryptionErrorMessage.deserialize(bytes(dem));
      const key = parsed.ratchetKey();
      return { serialized: hex(parsed.serialize()), timestamp: parsed.timestamp(),
               device_id: parsed.deviceId(), ratchet_key: key ? hex(key.serialize()) : null };
    },
    plaintext_content({ dem }) {
      const content = S.PlaintextContent.from(S.DecryptionErrorMessage.deserialize(bytes(dem)));
      const message = content.asCiphertextMessage();
      return { content: hex(content.serialize()), body: hex(content.body()),
               type: message.type(), ciphertext: hex(message.serialize()) };
    },
    plaintext_content_parse({ content }) {
      const body = S.PlaintextContent.deserialize(bytes(content)).body();
      const dem = S.DecryptionErrorMessage.extractFromSerializedBody(new Uint8Array(body));
      const key = dem.ratchetKey();
      return { body: hex(body), dem: hex(dem.serialize()), timestamp: dem.timestamp(),
               device_id: dem.deviceId(), ratchet_key: key ? hex(key.serialize()) : null };
    },
  };
  return { commands, party: () => me };
}

// Request: {"cmd": NAME, ...arguments}, one JSON object a line on stdin.
// Answer: {"ok": true, ...result} or {"ok": false, "error": MESSAGE}, one a
// line on stdout.  `around(request, run)` may wrap each command (driver_v5.mjs
// captures log lines with it); it must return the answer object.
export async function serve(commands, around = (request, run) => run()) {
  const run = async (request) => {
    try {
      const command = commands[request.cmd];
      if (!command) throw new Error(`unknown command ${request.cmd}`);
      return { ok: true, ...(await command(request)) };
    } catch (error) {
      return { ok: false, error: String(error && error.message || error) };
    }
  };
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    let answer;
    try {
      const request = JSON.parse(line);
      answer = await around(request, () => run(request));
    } catch (error) {
      answer = { ok: false, error: String(error && error.message || error) };
    }
    process.stdout.write(JSON.stringify(answer) + '\n');
  }
}
