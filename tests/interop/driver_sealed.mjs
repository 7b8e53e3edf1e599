// Sealed sender of libsignal-client: certificates, UnidentifiedSenderMessageContent
// (USMC), v1 and v2 messages, and sender keys inside them, for
// tests/interop/test_sealed_sender_interop.py and test_group_sealed_interop.py.
// JSON lines on stdin, answers on stdout, every byte value hex; the loop and
// the stores are driver_common.mjs.  libsignal is used only through its
// public JS API and .d.ts.
//
// One driver serves the three installed releases: the first command must be
// `init {version}`, which loads "0.72.1" (@signalapp/libsignal-client),
// "0.90.0" (libsignal-v4) or "0.103.0" (libsignal-v5).  The sealed-sender
// and sender-key calls are the same in all three (0.72.1 takes and returns
// Buffer, the later ones Uint8Array); what differs is the 1:1 session layer
// under make_bundle, process_bundle, seal_message and decrypt:
//   0.72.1   protocol version 3: bundles without Kyber (X3DH), refused here if
//            they carry Kyber fields; processPreKeyBundle(bundle, remote, ...).
//   0.90.0   protocol version 4 (PQXDH, Kyber1024 required in bundles); SPQR
//            offered and dropped for a peer that never sends it;
//            processPreKeyBundle(bundle, remote, ...).
//   0.103.0  protocol version 4 with SPQR always on; processPreKeyBundle takes
//            the local address after the remote one.
// and SenderCertificate.validateWithTrustRoots, which 0.72.1 lacks (it has
// validate(trustRoot, time) only, as the two later releases also do).
//
// The driver holds any number of named parties (each a libsignal identity with
// in-memory stores) and one server (trust root and server key).
//
//   ADDRESS = {"aci": UUID, "device_id": N} | {"pni": UUID, "device_id": N}   (device_id defaults to 1)
//   FAILURE = {"failed": true, "error": MESSAGE, "code": CODE}   (an ok answer: libsignal refused)
//
// Commands (arguments -> result):
//   init {version}  -> {version, kyber, local_address, validate_with_trust_roots}
//       loads the release; the booleans say which of the differences above apply.
//   party {name, aci, device_id=1, registration_id}      -> {identity}
//   make_bundle {name}                                   -> bundle fields (as driver_v4.mjs's; no one-time
//       prekey; from 0.72.1 without kyber_prekey_id, kyber_prekey, kyber_signature, last_resort)
//   process_bundle {name, to: ADDRESS, ...bundle fields} -> {}            (as driver_v4.mjs's fields; the
//       kyber_* fields required from 0.90.0 on, refused by 0.72.1)
//   server {key_id}                 -> {trust_root, server_key, server_certificate}
//   sender_certificate {uuid, e164|null, device_id, identity, expiration} -> {certificate}
//   certificate_info {certificate, trust_root | trust_roots: [hex], time}
//       -> {valid, sender_uuid, sender_e164, device_id, identity, expiration,
//           server_key_id, server_key, serialized} | FAILURE
//       valid: validate(trust_root, time), or validateWithTrustRoots(trust_roots,
//       time) (a driver error under 0.72.1, which has no such method)
//   usmc_parse {usmc}              -> {msg_type, contents, hint, group_id, certificate, serialized} | FAILURE
//   usmc_group {name, plaintext, certificate, hint, group_id|null} -> {usmc}
//       a SenderKeyMessage from the party's sender key (one fixed distribution id)
//   seal_message {name, to: ADDRESS, plaintext, certificate} -> {message}   sealedSenderEncryptMessage
//   seal_usmc {name, to: ADDRESS, identity, usmc}   -> {message} | FAILURE   sealedSenderEncrypt (v1)
//   seal_multi {name, recipients: [ADDRESS], excluded: [service id string], usmc} -> {message} | FAILURE
//   split {sent}  -> {recipients: {SID: {device_ids, registration_ids, received}}, excluded, single|null} | FAILURE
//   open {name, message}           -> usmc_parse's fields | FAILURE   sealedSenderDecryptToUsmc
//   decrypt {name, message, trust_root, time, local_uuid, local_device_id}
//       -> {plaintext, sender_uuid, sender_e164, device_id} | FAILURE   sealedSenderDecryptMessage
//   skdm {name, distribution_id}    -> {skdm}   the party's SenderKeyDistributionMessage (created if new)
//   skdm_process {name, sender: ADDRESS, skdm} -> {} | FAILURE
//   group_seal {name, distribution_id, plaintext, certificate, recipients: [ADDRESS], group_id}
//       -> {sent} | FAILURE   groupEncrypt, a USMC (hint 1), sealedSenderMultiRecipientEncrypt
//   group_open {name, message, trust_root, time}
//       -> {plaintext, sender_uuid, device_id} | FAILURE   sealedSenderDecryptToUsmc, the
//          certificate validated (validate(trust_root, time)), then groupDecrypt from the
//          certificate's sender (ACI, device)
import { bytes as uint8, describe, hex, serve, storeClasses } from './driver_common.mjs';

const RELEASES = {
  '0.72.1': { pkg: '@signalapp/libsignal-client', kyber: false, localAddress: false, buffers: true },
  '0.90.0': { pkg: 'libsignal-v4', kyber: true, localAddress: false, buffers: false },
  '0.103.0': { pkg: 'libsignal-v5', kyber: true, localAddress: true, buffers: false },
};
const KYBER_FIELDS = ['kyber_prekey_id', 'kyber_prekey', 'kyber_signature'];
const DISTRIBUTION_ID = 'd1d1d1d1-7000-11eb-b32a-33b8a8a487a6';

let S = null;                      // the libsignal module
let release = null;                // RELEASES[version]
let version = null;
let stores = null;                 // storeClasses(S) and SenderKeys
let MultiRecipientMessage = null;  // SealedSenderMultiRecipientMessage (not exported by index)

const need = () => { if (!S) throw new Error('init {version} first'); return S; };
// 0.72.1 takes Buffer; later releases take Uint8Array backed by their own
// ArrayBuffer (driver_common.mjs's bytes).
const bytes = (h) => (release.buffers ? Buffer.from(h, 'hex') : uint8(h));

function senderKeyStore() {
  return class SenderKeys extends S.SenderKeyStore {
    records = new Map();
    async saveSenderKey(address, id, record) { this.records.set(`${address}|${id}`, record.serialize()); }
    async getSenderKey(address, id) {
      const data = this.records.get(`${address}|${id}`);
      return data ? S.SenderKeyRecord.deserialize(data) : null;
    }
  };
}

const parties = new Map();
let server = null;

const address = (spec) => {
  const device = spec.device_id ?? 1;
  if (spec.aci !== undefined) return S.ProtocolAddress.new(S.Aci.fromUuid(spec.aci), device);
  if (spec.pni !== undefined) return S.ProtocolAddress.new(S.Pni.fromUuid(spec.pni), device);
  throw new Error(`an address is {aci|pni, device_id}: ${JSON.stringify(spec)}`);
};
const party = (name) => {
  const p = parties.get(name);
  if (!p) throw new Error(`no party ${name}`);
  return p;
};
// The local address argument of 0.103.0's session functions; none before.
const local = (me) => (release.localAddress ? [me.addr] : []);
const attempt = async (run) => {
  try { return await run(); } catch (error) { return { failed: true, ...describe(error) }; }
};
const usmcFields = (usmc) => ({
  msg_type: usmc.msgType(), contents: hex(usmc.contents()), hint: usmc.contentHint(),
  group_id: usmc.groupId() ? hex(usmc.groupId()) : null,
  certificate: hex(usmc.senderCertificate().serialize()), serialized: hex(usmc.serialize()),
});

const commands = {
  async init({ version: wanted }) {
    if (S) throw new Error('already initialised');
    if (!RELEASES[wanted]) throw new Error(`no package for libsignal-client ${wanted}`);
    release = RELEASES[wanted];
    S = await import(release.pkg);
    version = wanted;
    const { Sessions, Identities, PreKeys, SignedPreKeys, KyberPreKeys } = storeClasses(S);
    stores = { Sessions, Identities, PreKeys, SignedPreKeys, KyberPreKeys, SenderKeys: senderKeyStore() };
    // A CommonJS module (0.72.1) imports as {default: {default: class}}.
    const multi = await import(`${release.pkg}/dist/SealedSenderMultiRecipientMessage.js`);
    MultiRecipientMessage = typeof multi.default === 'function' ? multi.default : multi.default.default;
    return { version, kyber: release.kyber, local_address: release.localAddress,
             validate_with_trust_roots: typeof S.SenderCertificate.prototype.validateWithTrustRoots === 'function' };
  },
  party({ name, aci, device_id = 1, registration_id }) {
    const pair = S.IdentityKeyPair.generate();
    parties.set(name, { pair, addr: address({ aci, device_id }), sessions: new stores.Sessions(),
                        ids: new stores.Identities(pair, registration_id), prekeys: new stores.PreKeys(),
                        signed: new stores.SignedPreKeys(), kyber: new stores.KyberPreKeys(),
                        senderKeys: new stores.SenderKeys() });
    return { identity: hex(pair.publicKey.serialize()) };
  },
  async make_bundle({ name }) {
    const me = party(name);
    const spk = S.PrivateKey.generate();
    const signature = me.pair.privateKey.sign(spk.getPublicKey().serialize());
    await me.signed.saveSignedPreKey(1, S.SignedPreKeyRecord.new(1, Date.now(), spk.getPublicKey(), spk, signature));
    const fields = { registration_id: await me.ids.getLocalRegistrationId(), device_id: me.addr.deviceId(),
                     prekey_id: null, prekey: null, signed_prekey_id: 1,
                     signed_prekey: hex(spk.getPublicKey().serialize()), signature: hex(signature),
                     identity: hex(me.pair.publicKey.serialize()) };
    if (!release.kyber) return fields;
    const kem = S.KEMKeyPair.generate();
    const kyberSignature = me.pair.privateKey.sign(kem.getPublicKey().serialize());
    await me.kyber.saveKyberPreKey(2, S.KyberPreKeyRecord.new(2, Date.now(), kem, kyberSignature), true);
    return { ...fields, kyber_prekey_id: 2, kyber_prekey: hex(kem.getPublicKey().serialize()),
             kyber_signature: hex(kyberSignature), last_resort: true };
  },
  async process_bundle(b) {
    const me = party(b.name);
    const given = KYBER_FIELDS.filter((f) => b[f] !== undefined && b[f] !== null);
    if (release.kyber && given.length !== KYBER_FIELDS.length) {
      throw new Error(`libsignal-client ${version} needs ${KYBER_FIELDS.join(', ')} in a bundle`);
    }
    if (!release.kyber && given.length) {
      throw new Error(`libsignal-client ${version} runs protocol version 3 here: a bundle without ${given.join(', ')}`);
    }
    const kyber = release.kyber
      ? [b.kyber_prekey_id, S.KEMPublicKey.deserialize(bytes(b.kyber_prekey)), bytes(b.kyber_signature)] : [];
    const bundle = S.PreKeyBundle.new(b.registration_id, b.device_id,
      b.prekey_id ?? null, b.prekey ? S.PublicKey.deserialize(bytes(b.prekey)) : null,
      b.signed_prekey_id, S.PublicKey.deserialize(bytes(b.signed_prekey)), bytes(b.signature),
      S.PublicKey.deserialize(bytes(b.identity)), ...kyber);
    await S.processPreKeyBundle(bundle, address(b.to), ...local(me), me.sessions, me.ids);
    return {};
  },
  server({ key_id }) {
    const root = S.PrivateKey.generate(), key = S.PrivateKey.generate();
    server = { root, key, certificate: S.ServerCertificate.new(key_id, key.getPublicKey(), root) };
    return { trust_root: hex(root.getPublicKey().serialize()), server_key: hex(key.getPublicKey().serialize()),
             server_certificate: hex(server.certificate.serialize()) };
  },
  sender_certificate({ uuid, e164, device_id, identity, expiration }) {
    const cert = S.SenderCertificate.new(uuid, e164, device_id, S.PublicKey.deserialize(bytes(identity)),
                                         expiration, server.certificate, server.key);
    return { certificate: hex(cert.serialize()) };
  },
  certificate_info({ certificate, trust_root, trust_roots, time }) {
    if ((trust_root === undefined) === (trust_roots === undefined)) {
      throw new Error('certificate_info takes trust_root or trust_roots');
    }
    if (trust_roots !== undefined && typeof S.SenderCertificate.prototype.validateWithTrustRoots !== 'function') {
      throw new Error(`libsignal-client ${version} has no SenderCertificate.validateWithTrustRoots`);
    }
    return attempt(() => {
      const cert = S.SenderCertificate.deserialize(bytes(certificate));
      const signer = cert.serverCertificate();
      const valid = trust_roots === undefined
        ? cert.validate(S.PublicKey.deserialize(bytes(trust_root)), time)
        : cert.validateWithTrustRoots(trust_roots.map((r) => S.PublicKey.deserialize(bytes(r))), time);
      return { valid,
               sender_uuid: cert.senderUuid(), sender_e164: cert.senderE164(), device_id: cert.senderDeviceId(),
               identity: hex(cert.key().serialize()), expiration: cert.expiration(),
               server_key_id: signer.keyId(), server_key: hex(signer.key().serialize()),
               serialized: hex(cert.serialize()) };
    });
  },
  usmc_parse({ usmc }) {
    return attempt(() => usmcFields(S.UnidentifiedSenderMessageContent.deserialize(bytes(usmc))));
  },
  async usmc_group({ name, plaintext, certificate, hint, group_id }) {
    const me = party(name);
    await S.SenderKeyDistributionMessage.create(me.addr, DISTRIBUTION_ID, me.senderKeys);
    const message = await S.groupEncrypt(me.addr, DISTRIBUTION_ID, me.senderKeys, bytes(plaintext));
    const usmc = S.UnidentifiedSenderMessageContent.new(message, S.SenderCertificate.deserialize(bytes(certificate)),
                                                         hint, group_id ? bytes(group_id) : null);
    return { usmc: hex(usmc.serialize()) };
  },
  async seal_message({ name, to, plaintext, certificate }) {
    const me = party(name);
    const message = await S.sealedSenderEncryptMessage(bytes(plaintext), address(to),
      S.SenderCertificate.deserialize(bytes(certificate)), me.sessions, me.ids);
    return { message: hex(message) };
  },
  seal_usmc({ name, to, identity, usmc }) {
    const me = party(name);
    return attempt(async () => {
      await me.ids.saveIdentity(address(to), S.PublicKey.deserialize(bytes(identity)));
      const message = await S.sealedSenderEncrypt(S.UnidentifiedSenderMessageContent.deserialize(bytes(usmc)),
                                                  address(to), me.ids);
      return { message: hex(message) };
    });
  },
  seal_multi({ name, recipients, excluded = [], usmc }) {
    const me = party(name);
    return attempt(async () => {
      const message = await S.sealedSenderMultiRecipientEncrypt({
        content: S.UnidentifiedSenderMessageContent.deserialize(bytes(usmc)),
        recipients: recipients.map(address),
        excludedRecipients: excluded.map((id) => S.ServiceId.parseFromServiceIdString(id)),
        identityStore: me.ids, sessionStore: me.sessions });
      return { message: hex(message) };
    });
  },
  split({ sent }) {
    return attempt(() => {
      const parsed = new MultiRecipientMessage(bytes(sent));
      const recipients = {};
      for (const [id, r] of Object.entries(parsed.recipientsByServiceIdString())) {
        recipients[id] = { device_ids: r.deviceIds, registration_ids: r.registrationIds,
                           received: hex(parsed.messageForRecipient(r)) };
      }
      let single = null;
      if (Object.keys(recipients).length === 1) {
        single = hex(S.sealedSenderMultiRecipientMessageForSingleRecipient(bytes(sent)));
      }
      return { recipients, excluded: [...parsed.excludedRecipientServiceIdStrings()], single };
    });
  },
  open({ name, message }) {
    return attempt(async () => usmcFields(await S.sealedSenderDecryptToUsmc(bytes(message), party(name).ids)));
  },
  decrypt({ name, message, trust_root, time, local_uuid, local_device_id }) {
    const me = party(name);
    return attempt(async () => {
      const result = await S.sealedSenderDecryptMessage(bytes(message), S.PublicKey.deserialize(bytes(trust_root)),
        time, null, local_uuid, local_device_id, me.sessions, me.ids, me.prekeys, me.signed, me.kyber);
      return { plaintext: hex(result.message()), sender_uuid: result.senderUuid(),
               sender_e164: result.senderE164(), device_id: result.deviceId() };
    });
  },
  async skdm({ name, distribution_id }) {
    const me = party(name);
    const skdm = await S.SenderKeyDistributionMessage.create(me.addr, distribution_id, me.senderKeys);
    return { skdm: hex(skdm.serialize()) };
  },
  skdm_process({ name, sender, skdm }) {
    const me = party(name);
    return attempt(async () => {
      await S.processSenderKeyDistributionMessage(address(sender),
        S.SenderKeyDistributionMessage.deserialize(bytes(skdm)), me.senderKeys);
      return {};
    });
  },
  group_seal({ name, distribution_id, plaintext, certificate, recipients, group_id }) {
    const me = party(name);
    return attempt(async () => {
      const message = await S.groupEncrypt(me.addr, distribution_id, me.senderKeys, bytes(plaintext));
      const usmc = S.UnidentifiedSenderMessageContent.new(message, S.SenderCertificate.deserialize(bytes(certificate)),
                                                           1, bytes(group_id));
      const sent = await S.sealedSenderMultiRecipientEncrypt({
        content: usmc, recipients: recipients.map(address), identityStore: me.ids, sessionStore: me.sessions });
      return { sent: hex(sent) };
    });
  },
  group_open({ name, message, trust_root, time }) {
    const me = party(name);
    return attempt(async () => {
      const usmc = await S.sealedSenderDecryptToUsmc(bytes(message), me.ids);
      const cert = usmc.senderCertificate();
      if (!cert.validate(S.PublicKey.deserialize(bytes(trust_root)), time)) {
        throw new Error('sender certificate not valid');
      }
      const sender = S.ProtocolAddress.new(S.Aci.fromUuid(cert.senderUuid()), cert.senderDeviceId());
      const plaintext = await S.groupDecrypt(sender, me.senderKeys, usmc.contents());
      return { plaintext: hex(plaintext), sender_uuid: cert.senderUuid(), device_id: cert.senderDeviceId() };
    });
  },
};

// Every command but init needs a release loaded.
for (const [name, run] of Object.entries(commands)) {
  if (name !== 'init') commands[name] = (request) => { need(); return run(request); };
}

await serve(commands);
