"""PyKMIP 0.11.0's encodings of the KMIP 1.4 messages envol sends and reads
(see README.md): writes pykmip-<name>.hex next to this script."""
import os
import warnings
warnings.simplefilter("ignore")
from kmip.core import enums as E, utils, objects, attributes
from kmip.core.messages import payloads, messages, contents
from kmip.core.factories.attributes import AttributeFactory
from kmip.core import primitives
af=AttributeFactory()
here=os.path.dirname(os.path.abspath(__file__))
def out(name, data):
    with open(os.path.join(here, "pykmip-%s.hex" % name), "w") as f:
        f.write(data.hex() + "\n")
def build(op, payload):
    bi=messages.RequestBatchItem(operation=primitives.Enumeration(E.Operation,op,tag=E.Tags.OPERATION),request_payload=payload)
    h=messages.RequestHeader(protocol_version=contents.ProtocolVersion(1,4),batch_count=contents.BatchCount(1))
    m=messages.RequestMessage(request_header=h,batch_items=[bi]); s=utils.BytearrayStream(); m.write(s,E.KMIPVersion.KMIP_1_4); return bytes(s.buffer)
from kmip.core.attributes import CryptographicParameters
cp=CryptographicParameters(block_cipher_mode=E.BlockCipherMode.GCM,cryptographic_algorithm=E.CryptographicAlgorithm.AES,tag_length=16)
p=payloads.EncryptRequestPayload(unique_identifier="6",cryptographic_parameters=cp,data=b"k"*64,iv_counter_nonce=b"\1"*12,auth_additional_data=b"ctx")
out("encrypt-request", build(E.Operation.ENCRYPT,p))
p=payloads.DecryptRequestPayload(unique_identifier="6",cryptographic_parameters=cp,data=b"c"*64,iv_counter_nonce=b"\1"*12,auth_additional_data=b"ctx",auth_tag=b"\x07"*16)
out("decrypt-request", build(E.Operation.DECRYPT,p))
name=af.create_attribute(E.AttributeType.NAME,"master-a")
ta=objects.TemplateAttribute(attributes=[
 af.create_attribute(E.AttributeType.CRYPTOGRAPHIC_ALGORITHM,E.CryptographicAlgorithm.AES),
 af.create_attribute(E.AttributeType.CRYPTOGRAPHIC_LENGTH,256),
 af.create_attribute(E.AttributeType.CRYPTOGRAPHIC_USAGE_MASK,[E.CryptographicUsageMask.ENCRYPT,E.CryptographicUsageMask.DECRYPT]),
 name])
out("create-request", build(E.Operation.CREATE, payloads.CreateRequestPayload(object_type=E.ObjectType.SYMMETRIC_KEY, template_attribute=ta)))
out("locate-request", build(E.Operation.LOCATE, payloads.LocateRequestPayload(attributes=[af.create_attribute(E.AttributeType.NAME,"master-a")])))
out("get-attributes-request", build(E.Operation.GET_ATTRIBUTES, payloads.GetAttributesRequestPayload(unique_identifier="6", attribute_names=["State"])))
out("activate-request", build(E.Operation.ACTIVATE, payloads.ActivateRequestPayload(unique_identifier=attributes.UniqueIdentifier("6"))))
out("revoke-request", build(E.Operation.REVOKE, payloads.RevokeRequestPayload(unique_identifier=attributes.UniqueIdentifier("6"), revocation_reason=objects.RevocationReason(code=E.RevocationReasonCode.CESSATION_OF_OPERATION))))
out("destroy-request", build(E.Operation.DESTROY, payloads.DestroyRequestPayload(unique_identifier=attributes.UniqueIdentifier("6"))))
def resp(op, status, payload=None, reason=None, msg=None):
    bi=messages.ResponseBatchItem(operation=primitives.Enumeration(E.Operation,op,tag=E.Tags.OPERATION),result_status=contents.ResultStatus(status),
        result_reason=contents.ResultReason(reason) if reason else None, result_message=contents.ResultMessage(msg) if msg else None, response_payload=payload)
    h=messages.ResponseHeader(protocol_version=contents.ProtocolVersion(1,4),time_stamp=contents.TimeStamp(1700000000),batch_count=contents.BatchCount(1))
    m=messages.ResponseMessage(response_header=h,batch_items=[bi]); s=utils.BytearrayStream(); m.write(s,E.KMIPVersion.KMIP_1_4); return bytes(s.buffer)
out("encrypt-response", resp(E.Operation.ENCRYPT, E.ResultStatus.SUCCESS, payloads.EncryptResponsePayload(unique_identifier="6", data=b"c"*64, auth_tag=b"\x07"*16)))
out("decrypt-failure-response", resp(E.Operation.DECRYPT, E.ResultStatus.OPERATION_FAILED, None, E.ResultReason.GENERAL_FAILURE, "Operation failed. See the server logs for more information."))
out("locate-response", resp(E.Operation.LOCATE, E.ResultStatus.SUCCESS, payloads.LocateResponsePayload(unique_identifiers=["3","5"])))
st=af.create_attribute(E.AttributeType.STATE, E.State.DEACTIVATED)
out("get-attributes-response", resp(E.Operation.GET_ATTRIBUTES, E.ResultStatus.SUCCESS, payloads.GetAttributesResponsePayload(unique_identifier="6", attributes=[st])))
