// Sender keys (group messaging) of libsignal-client, driven by JSON lines on
// stdin; answers on stdout.  The oracle for signalish._sender_keys.  Every
// byte value is hex.
//
// One driver serves the three installed releases: the first command must be
// `init {version}`, which loads "0.72.1" (@signalapp/libsignal-client),
// "0.90.0" (libsignal-v4) or "0.103.0" (libsignal-v5).  libsignal is used
// only through its public JS API and .d.ts.
//
// Protocol: request {"cmd": NAME, ...arguments}; answer {"ok": true,
// ...result} or {"ok": false, "error": MESSAGE} (driver_common.mjs's serve).
// Group operations that fail answer ok: true with {"ok_op": false, error,
// code} inside `result`, so a test can assert libsignal's error without the
// driver treating it as its own failure.
//
// Parties.  Every command that touches a store takes `party` (default "me"):
// each party name has its own in-memory SenderKeyStore, so one driver can
// play a sender and several receivers.  Records are kept serialized, keyed by
// "<address>|<distribution id>", as libsignal's store is keyed.
//
//   SENDER = "alice" (device 1) | {"name": "alice", "device_id": 2}
//
// Commands (arguments -> result):
//   init {version}                               -> {version}
//   create {party, sender, distribution_id}      -> SKDM (see below)
//       SenderKeyDistributionMessage.create: a new sender key, or the current
//       state of the existing one.
//   process {party, sender, skdm}                -> {result}
//       deserialize, then processSenderKeyDistributionMessage.
//   parse_skdm {skdm}                            -> {result: SKDM}
//   skdm_new {message_version, distribution_id, chain_id, iteration,
//             chain_key, signing_key}            -> {skdm}
//       SenderKeyDistributionMessage._new (signing_key: 33-byte public key).
//   encrypt {party, sender, distribution_id, plaintext} -> {result: {type, body}}
//   encrypt_bulk {party, sender, distribution_id, text, count, keep}
//       -> {messages: [{index, body}]}; plaintexts are text + index.
//   decrypt {party, sender, body}                -> {result: {plaintext}}
//   decrypt_each {party, sender, messages: [body], keep_state}
//       -> {results}; without keep_state each attempt is undone (as if a
//       fresh copy of the store tried each one).
//   parse_skm {body}                             -> {result: {distribution_id,
//       chain_id, iteration, ciphertext}}
//   verify_skm {body, signing_key}               -> {result: {valid}}
//   record {party, sender, distribution_id}      -> {record: hex | null}
//   set_record {party, sender, distribution_id, record: hex | null} -> {}
//   record_info {party, sender, distribution_id} -> {states: [{chain_id,
//       iteration, has_private, message_keys: [iteration...]}] | null},
//       read with a generic protobuf reader from the serialized record.
//   forget {party}                               -> {} (drops the party)
//
// SKDM = {skdm, distribution_id, chain_id, iteration, chain_key}.
import { describe, hex, protobufFields, serve } from './driver_common.mjs';

const PACKAGES = {
  '0.72.1': '@signalapp/libsignal-client',
  '0.90.0': 'libsignal-v4',
  '0.103.0': 'libsignal-v5',
};

let S = null;
let version = null;
// 0.72.1 takes Buffer; later releases take Uint8Array backed by their own
// ArrayBuffer (a pooled Buffer is a view into a shared one).
const bin = (h) => (version === '0.72.1' ? Buffer.from(h, 'hex') : new Uint8Array(Buffer.from(h, 'hex')));
const need = () => { if (!S) throw new Error('init {version} first'); return S; };

function address(spec) {
  if (typeof spec === 'string') return need().ProtocolAddress.new(spec, 1);
  if (spec && typeof spec.name === 'string') return need().ProtocolAddress.new(spec.name, spec.device_id ?? 1);
  throw new Error(`a sender is a name or {name, device_id}, not ${JSON.stringify(spec)}`);
}

let storeClass = null;
function makeStoreClass() {
  return class Records extends S.SenderKeyStore {
    records = new Map();
    key(sender, distributionId) { return `${sender.toString()}|${String(distributionId).toLowerCase()}`; }
    async saveSenderKey(sender, distributionId, record) {
      this.records.set(this.key(sender, distributionId), Buffer.from(record.serialize()));
    }
    async getSenderKey(sender, distributionId) {
      const data = this.records.get(this.key(sender, distributionId));
      return data ? S.SenderKeyRecord.deserialize(bin(data.toString('hex'))) : null;
    }
  };
}

const parties = new Map();
function party(name = 'me') {
  need();
  if (!parties.has(name)) parties.set(name, new storeClass());
  return parties.get(name);
}

// Runs a libsignal group operation; its failure is a result, not a driver error.
async function attempt(run) {
  try { return { ok_op: true, ...(await run()) }; } catch (error) { return { ok_op: false, ...describe(error) }; }
}

const skdmView = (m) => ({ skdm: hex(m.serialize()), distribution_id: String(m.distributionId()),
                           chain_id: m.chainId(), iteration: m.iteration(), chain_key: hex(m.chainKey()) });

function states(data) {
  const value = (fields, n, otherwise) => { const f = fields.find((x) => x.field === n); return f ? f.value : otherwise; };
  return protobufFields(data).filter((f) => f.field === 1).map((f) => {
    const state = protobufFields(Buffer.from(f.value));
    const chain = protobufFields(Buffer.from(value(state, 2, Buffer.alloc(0))));
    const signing = protobufFields(Buffer.from(value(state, 3, Buffer.alloc(0))));
    return {
      chain_id: Number(value(state, 1, 0n)),
      iteration: Number(value(chain, 1, 0n)),
      has_private: signing.some((x) => x.field === 2),
      message_keys: state.filter((x) => x.field === 4)
        .map((x) => Number(value(protobufFields(Buffer.from(x.value)), 1, 0n))),
    };
  });
}

const commands = {
  async init({ version: wanted }) {
    if (S) throw new Error('already initialised');
    if (!PACKAGES[wanted]) throw new Error(`no package for libsignal-client ${wanted}`);
    S = await import(PACKAGES[wanted]);
    version = wanted;
    storeClass = makeStoreClass();
    return { version };
  },
  async create({ party: p, sender, distribution_id }) {
    return skdmView(await need().SenderKeyDistributionMessage.create(address(sender), distribution_id, party(p)));
  },
  async process({ party: p, sender, skdm }) {
    return { result: await attempt(async () => {
      const message = S.SenderKeyDistributionMessage.deserialize(bin(skdm));
      await S.processSenderKeyDistributionMessage(address(sender), message, party(p));
      return {};
    }) };
  },
  async parse_skdm({ skdm }) {
    return { result: await attempt(async () => skdmView(need().SenderKeyDistributionMessage.deserialize(bin(skdm)))) };
  },
  skdm_new({ message_version, distribution_id, chain_id, iteration, chain_key, signing_key }) {
    const m = need().SenderKeyDistributionMessage._new(message_version, distribution_id, chain_id, iteration,
      bin(chain_key), S.PublicKey.deserialize(bin(signing_key)));
    return { skdm: hex(m.serialize()) };
  },
  async encrypt({ party: p, sender, distribution_id, plaintext }) {
    return { result: await attempt(async () => {
      const m = await S.groupEncrypt(address(sender), distribution_id, party(p), bin(plaintext));
      return { type: m.type(), body: hex(m.serialize()) };
    }) };
  },
  async encrypt_bulk({ party: p, sender, distribution_id, text, count, keep }) {
    const wanted = new Set(keep);
    const messages = [];
    for (let i = 0; i < count; i++) {
      const m = await need().groupEncrypt(address(sender), distribution_id, party(p),
        bin(Buffer.from(text + i).toString('hex')));
      if (wanted.has(i)) messages.push({ index: i, body: hex(m.serialize()) });
    }
    return { messages };
  },
  async decrypt({ party: p, sender, body }) {
    return { result: await attempt(async () =>
      ({ plaintext: hex(await S.groupDecrypt(address(sender), party(p), bin(body))) })) };
  },
  async decrypt_each({ party: p, sender, messages, keep_state }) {
    const store = party(p);
    const results = [];
    for (const body of messages) {
      const before = new Map(store.records);
      results.push(await attempt(async () =>
        ({ plaintext: hex(await S.groupDecrypt(address(sender), store, bin(body))) })));
      if (!keep_state) store.records = before;
    }
    return { results };
  },
  async parse_skm({ body }) {
    return { result: await attempt(async () => {
      const m = need().SenderKeyMessage.deserialize(bin(body));
      return { distribution_id: String(m.distributionId()), chain_id: m.chainId(), iteration: m.iteration(),
               ciphertext: hex(m.ciphertext()) };
    }) };
  },
  async verify_skm({ body, signing_key }) {
    return { result: await attempt(async () => ({
      valid: need().SenderKeyMessage.deserialize(bin(body)).verifySignature(S.PublicKey.deserialize(bin(signing_key))),
    })) };
  },
  record({ party: p, sender, distribution_id }) {
    const store = party(p);
    const data = store.records.get(store.key(address(sender), distribution_id));
    return { record: data ? hex(data) : null };
  },
  set_record({ party: p, sender, distribution_id, record }) {
    const store = party(p);
    const key = store.key(address(sender), distribution_id);
    if (record === null || record === undefined) store.records.delete(key);
    else store.records.set(key, Buffer.from(S.SenderKeyRecord.deserialize(bin(record)).serialize()));
    return {};
  },
  record_info({ party: p, sender, distribution_id }) {
    const store = party(p);
    const data = store.records.get(store.key(address(sender), distribution_id));
    return { states: data ? states(data) : null };
  },
  forget({ party: p = 'me' }) { parties.delete(p); return {}; },
};

await serve(commands);
