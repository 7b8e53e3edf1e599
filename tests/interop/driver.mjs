// One libsignal-client party, driven by JSON lines on stdin; answers on stdout.
// Written for signalish's interoperability tests; every value is hex.
import * as S from '@signalapp/libsignal-client';
import * as readline from 'node:readline';

const hex = (b) => Buffer.from(b).toString('hex');
const unhex = (h) => Buffer.from(h, 'hex');

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
    this.known.set(address.toString(), key.serialize());
    return before && !before.equals(key.serialize()) ? S.IdentityChange.ReplacedExisting : S.IdentityChange.NewOrUnchanged;
  }
  async isTrustedIdentity(address, key) {
    const known = this.known.get(address.toString());
    return !known || known.equals(key.serialize());
  }
  async getIdentity(address) {
    const known = this.known.get(address.toString());
    return known ? S.PublicKey.deserialize(known) : null;
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

class KyberPreKeys extends S.KyberPreKeyStore {
  async saveKyberPreKey() { throw new Error('no Kyber in protocol v3'); }
  async getKyberPreKey() { throw new Error('no Kyber in protocol v3'); }
  async markKyberPreKeyUsed() {}
}

let me = null;
const address = (name) => S.ProtocolAddress.new(name, 1);

// Everything a decryption can change lives in these maps; copying them is a
// snapshot of the whole party, and putting the copies back undoes an attempt.
const snapshot = () => ({ sessions: new Map(me.sessions.records), known: new Map(me.identities.known),
                          prekeys: new Map(me.prekeys.keys), signed: new Map(me.signed.keys) });
const restore = (s) => {
  me.sessions.records = new Map(s.sessions); me.identities.known = new Map(s.known);
  me.prekeys.keys = new Map(s.prekeys); me.signed.keys = new Map(s.signed);
};
const describe = (error) => ({ error: String(error && error.message || error),
                               code: error && error.code !== undefined ? String(error.code) : null });

async function decryptOne(from, type, data) {
  let parsed;
  try {
    parsed = type === S.CiphertextMessageType.PreKey
      ? S.PreKeySignalMessage.deserialize(data) : S.SignalMessage.deserialize(data);
  } catch (error) { return { ok: false, stage: 'deserialize', ...describe(error) }; }
  try {
    const plaintext = type === S.CiphertextMessageType.PreKey
      ? await S.signalDecryptPreKey(parsed, address(from), me.sessions, me.identities,
          me.prekeys, me.signed, me.kyber)
      : await S.signalDecrypt(parsed, address(from), me.sessions, me.identities);
    return { ok: true, plaintext: hex(plaintext) };
  } catch (error) { return { ok: false, stage: 'decrypt', ...describe(error) }; }
}

const commands = {
  init({ registration_id }) {
    const pair = S.IdentityKeyPair.generate();
    me = { pair, sessions: new Sessions(), identities: new Identities(pair, registration_id),
           prekeys: new PreKeys(), signed: new SignedPreKeys(), kyber: new KyberPreKeys() };
    return { identity: hex(pair.publicKey.serialize()) };
  },
  async make_bundle({ registration_id, signed_prekey_id, prekey_id }) {
    const spk = S.PrivateKey.generate();
    const signature = me.pair.privateKey.sign(spk.getPublicKey().serialize());
    await me.signed.saveSignedPreKey(signed_prekey_id,
      S.SignedPreKeyRecord.new(signed_prekey_id, Date.now(), spk.getPublicKey(), spk, signature));
    const opk = S.PrivateKey.generate();
    await me.prekeys.savePreKey(prekey_id, S.PreKeyRecord.new(prekey_id, opk.getPublicKey(), opk));
    return { registration_id, device_id: 1, prekey_id, prekey: hex(opk.getPublicKey().serialize()),
             signed_prekey_id, signed_prekey: hex(spk.getPublicKey().serialize()),
             signature: hex(signature), identity: hex(me.pair.publicKey.serialize()) };
  },
  async process_bundle(b) {
    const bundle = S.PreKeyBundle.new(b.registration_id, b.device_id,
      b.prekey_id ?? null, b.prekey ? S.PublicKey.deserialize(unhex(b.prekey)) : null,
      b.signed_prekey_id, S.PublicKey.deserialize(unhex(b.signed_prekey)), unhex(b.signature),
      S.PublicKey.deserialize(unhex(b.identity)));
    await S.processPreKeyBundle(bundle, address(b.address), me.sessions, me.identities);
    return {};
  },
  async encrypt({ address: to, plaintext }) {
    const message = await S.signalEncrypt(unhex(plaintext), address(to), me.sessions, me.identities);
    return { type: message.type(), body: hex(message.serialize()) };
  },
  async decrypt({ address: from, type, body }) {
    const data = unhex(body);
    const plaintext = type === S.CiphertextMessageType.PreKey
      ? await S.signalDecryptPreKey(S.PreKeySignalMessage.deserialize(data), address(from),
          me.sessions, me.identities, me.prekeys, me.signed, me.kyber)
      : await S.signalDecrypt(S.SignalMessage.deserialize(data), address(from),
          me.sessions, me.identities);
    return { plaintext: hex(plaintext) };
  },
  // Encrypts `count` messages ("<text><index>"), returns only those at `keep`.
  async encrypt_bulk({ address: to, text, count, keep }) {
    const wanted = new Set(keep);
    const kept = [];
    for (let i = 0; i < count; i++) {
      const message = await S.signalEncrypt(Buffer.from(text + i), address(to), me.sessions,
                                            me.identities);
      if (wanted.has(i)) kept.push({ index: i, type: message.type(), body: hex(message.serialize()) });
    }
    return { messages: kept };
  },
  // Tries each message against the party as it is now, undoing every attempt
  // (unless keep_state): as if a fresh copy of the party tried each one.
  async decrypt_each({ address: from, messages, keep_state }) {
    const results = [];
    for (const { type, body } of messages) {
      const before = snapshot();
      results.push(await decryptOne(from, type, unhex(body)));
      if (!keep_state) restore(before);
    }
    return { results };
  },
  verify({ key, message, signature }) {
    return { valid: S.PublicKey.deserialize(unhex(key)).verify(unhex(message), unhex(signature)) };
  },
  sign({ message }) { return { signature: hex(me.pair.privateKey.sign(unhex(message))) }; },
  fingerprint({ iterations, version, local_id, local_key, remote_id, remote_key }) {
    const fp = S.Fingerprint.new(iterations, version, unhex(local_id),
      S.PublicKey.deserialize(unhex(local_key)), unhex(remote_id),
      S.PublicKey.deserialize(unhex(remote_key)));
    return { displayable: fp.displayableFingerprint().toString(),
             scannable: hex(fp.scannableFingerprint().toBuffer()) };
  },
  compare_scannable({ ours, theirs }) {
    try {
      return { match: S.ScannableFingerprint._fromBuffer(unhex(ours))
        .compare(S.ScannableFingerprint._fromBuffer(unhex(theirs))) };
    } catch (error) { return { match: null, error: String(error.message || error) }; }
  },
};

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  let answer;
  try {
    const request = JSON.parse(line);
    answer = { ok: true, ...(await commands[request.cmd](request)) };
  } catch (error) {
    answer = { ok: false, error: String(error && error.message || error) };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
