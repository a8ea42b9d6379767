// Checking and describing a STARTTLS certificate: the one pure check of a PEM chain and key lives
// in the model (src/model/cert.ts), shared with the certificate store (src/certs), so the
// controller validates `dnsproxy mail cert` input with the same code the relay uses before it
// swaps a certificate in.
export { checkCertPair, describeCert, pemCertificates, type CertInfo, type PairCheck } from '../../model/cert.js';
