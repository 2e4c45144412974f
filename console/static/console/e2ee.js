// End-to-end encryption in the browser with WebCrypto, byte for byte as docs/protocol/e2ee.md describes it:
// X25519, SHA-256 transcript, Ed25519 signature check (docs/protocol/decisions.md C1), HKDF-SHA256, AES-256-GCM.

const PREFIX = { client_to_agent: [0x63, 0x32, 0x61, 0x00], agent_to_client: [0x61, 0x32, 0x63, 0x00] };
const INFO = new TextEncoder().encode("commands.com/gateway/v1/e2ee");

export function b64(bytes) {
  let text = "";
  for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
  return btoa(text);
}

export function unb64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

export function randomHex(bytes) {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function supported() {
  try {
    await crypto.subtle.generateKey({ name: "X25519" }, true, ["deriveBits"]);
    return true;
  } catch {
    return false;
  }
}

export async function newEphemeral() {
  const pair = await crypto.subtle.generateKey({ name: "X25519" }, true, ["deriveBits"]);
  const publicKey = b64(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { pair, publicKey };
}

export async function transcript(sessionId, handshakeId, clientKey, nonce, agentKey) {
  const text = `${sessionId}|${handshakeId}|${clientKey}|${nonce}|${agentKey}`;
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

export async function verifyIdentity(identityKeyB64, transcriptBytes, signatureB64) {
  try {
    const key = await crypto.subtle.importKey("raw", unb64(identityKeyB64), { name: "Ed25519" }, false, ["verify"]);
    return await crypto.subtle.verify({ name: "Ed25519" }, key, unb64(signatureB64), transcriptBytes);
  } catch {
    return false;
  }
}

export async function fingerprint(publicKeyB64) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", unb64(publicKeyB64)));
  return Array.from(digest.slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("").match(/.{4}/g).join(" ");
}

export async function deriveKeys(pair, agentKeyB64, transcriptBytes) {
  const agentKey = await crypto.subtle.importKey("raw", unb64(agentKeyB64), { name: "X25519" }, false, []);
  const shared = await crypto.subtle.deriveBits({ name: "X25519", public: agentKey }, pair.privateKey, 256);
  const ikm = await crypto.subtle.importKey("raw", shared, "HKDF", false, ["deriveBits"]);
  const okm = new Uint8Array(
    await crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: transcriptBytes, info: INFO }, ikm, 768),
  );
  const aes = (bytes) => crypto.subtle.importKey("raw", bytes, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
  return { clientToAgent: await aes(okm.slice(0, 32)), agentToClient: await aes(okm.slice(32, 64)) };
}

function nonceFor(direction, seq) {
  const nonce = new Uint8Array(12);
  nonce.set(PREFIX[direction], 0);
  new DataView(nonce.buffer).setBigUint64(4, BigInt(seq));
  return nonce;
}

export async function seal(key, direction, seq, sessionId, messageId, plaintext) {
  const nonce = nonceFor(direction, seq);
  const aad = new TextEncoder().encode(`${sessionId}|${messageId}|${seq}|${direction}`);
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: aad }, key, new TextEncoder().encode(plaintext)),
  );
  return {
    encrypted: true,
    alg: "aes-256-gcm",
    direction,
    seq,
    nonce: b64(nonce),
    ciphertext: b64(sealed.slice(0, -16)),
    tag: b64(sealed.slice(-16)),
    aad: b64(aad),
  };
}

// Decrypt as the clients do: the nonce must be the one (direction, seq) gives; the carried AAD is authenticated.
export async function open(key, frame, direction) {
  if (frame.direction !== direction) throw new Error("wrong direction");
  const expected = b64(nonceFor(direction, frame.seq));
  if (frame.nonce !== expected) throw new Error("nonce mismatch for sequence/direction");
  const sealed = new Uint8Array([...unb64(frame.ciphertext), ...unb64(frame.tag)]);
  const params = { name: "AES-GCM", iv: unb64(frame.nonce) };
  if (frame.aad) params.additionalData = unb64(frame.aad);
  return new TextDecoder().decode(await crypto.subtle.decrypt(params, key, sealed));
}
