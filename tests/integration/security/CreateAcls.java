// Creates Kafka ACL bindings with the Admin client, for tests/integration/security/acl_broker.py: the pinned
// Kafka's jars carry no kafka-acls tool (kafka-tools is not on the broker's classpath), and aiokafka has no
// CreateAcls. Run with the single-file source launcher: java -cp '<libs>/*' CreateAcls.java admin.properties
// Standard input: one binding a line, tab-separated: principal, resource type (TOPIC, GROUP, CLUSTER,
// TRANSACTIONAL_ID), name, pattern type (LITERAL, PREFIXED), operation (READ, WRITE, DESCRIBE, IDEMPOTENT_WRITE).
import java.io.BufferedReader;
import java.io.FileReader;
import java.io.InputStreamReader;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class CreateAcls {
    public static void main(String[] args) throws Exception {
        Properties config = new Properties();
        try (FileReader in = new FileReader(args[0])) {
            config.load(in);
        }
        List<AclBinding> bindings = new ArrayList<>();
        BufferedReader lines = new BufferedReader(new InputStreamReader(System.in));
        for (String line = lines.readLine(); line != null; line = lines.readLine()) {
            if (line.isBlank()) {
                continue;
            }
            String[] f = line.split("\t", -1);
            bindings.add(new AclBinding(
                new ResourcePattern(ResourceType.valueOf(f[1]), f[2], PatternType.valueOf(f[3])),
                new AccessControlEntry(f[0], "*", AclOperation.valueOf(f[4]), AclPermissionType.ALLOW)));
        }
        try (Admin admin = Admin.create(config)) {
            admin.createAcls(bindings).all().get();
        }
        System.out.println("created " + bindings.size() + " ACL bindings");
    }
}
