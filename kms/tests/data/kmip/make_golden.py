import warnings
warnings.simplefilter("ignore")
from kmip.core import enums as E, utils
from kmip.core.messages import payloads, messages, contents
from kmip.core.attributes import CryptographicParameters
from kmip.core import primitives
def build(op, payload):
    bi=messages.RequestBatchItem(operation=primitives.Enumeration(E.Operation,op,tag=E.Tags.OPERATION),request_payload=payload)
    h=messages.RequestHeader(protocol_version=contents.ProtocolVersion(1,4),batch_count=contents.BatchCount(1))
    m=messages.RequestMessage(request_header=h,batch_items=[bi]); s=utils.BytearrayStream(); m.write(s,E.KMIPVersion.KMIP_1_4); return bytes(s.buffer)
cp=CryptographicParameters(block_cipher_mode=E.BlockCipherMode.GCM,cryptographic_algorithm=E.CryptographicAlgorithm.AES,tag_length=16)
p=payloads.EncryptRequestPayload(unique_identifier="6",cryptographic_parameters=cp,data=b"k"*64,iv_counter_nonce=b"\1"*12,auth_additional_data=b"ctx")
print("encrypt", build(E.Operation.ENCRYPT,p).hex())
p=payloads.DecryptRequestPayload(unique_identifier="6",cryptographic_parameters=cp,data=b"c"*64,iv_counter_nonce=b"\1"*12,auth_additional_data=b"ctx",auth_tag=b"\x07"*16)
print("decrypt", build(E.Operation.DECRYPT,p).hex())
