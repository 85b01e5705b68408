// Hessian 2.0 peer for laneway's interop tests: Caucho Hessian (Debian libhessian-java), one
// JVM per test session.
//
// stdout: one line per vector this program writes with Hessian2Output:  V <tab> name <tab> hex
// stdin:  lines  name <tab> hex  that laneway encoded; each is read with Hessian2Input and
//         compared with this program's value of that name:   C <tab> name <tab> OK | FAIL <tab> why
//
// The values here and the Python expectations in tests/interop/test_hessian_interop.py share
// their names. Comparison is by a type-exact description (Integer vs Long, int[] vs ArrayList).
package laneway.interop;

import com.caucho.hessian.io.Hessian2Input;
import com.caucho.hessian.io.Hessian2Output;
import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStreamReader;
import java.io.Serializable;
import java.lang.reflect.Array;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Date;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

public final class HessianPeer {
  enum Color { RED, GREEN }

  static final class Car implements Serializable {
    String color;
    String model;

    Car() {}

    Car(String color, String model) {
      this.color = color;
      this.model = model;
    }
  }

  static final class LinkedNode implements Serializable {
    int head;
    LinkedNode tail;
  }

  static final class Holder implements Serializable {
    String name;
    List<Object> items;
    Map<String, Object> props;
    Car car;
    long id;
    double score;
    boolean flag;
    Date when;
    byte[] blob;
    int[] numbers;
  }

  static final class K0 implements Serializable { int f; K0() {} K0(int f) { this.f = f; } }
  static final class K1 implements Serializable { int f; K1() {} K1(int f) { this.f = f; } }
  static final class K2 implements Serializable { int f; K2() {} K2(int f) { this.f = f; } }
  static final class K3 implements Serializable { int f; K3() {} K3(int f) { this.f = f; } }
  static final class K4 implements Serializable { int f; K4() {} K4(int f) { this.f = f; } }
  static final class K5 implements Serializable { int f; K5() {} K5(int f) { this.f = f; } }
  static final class K6 implements Serializable { int f; K6() {} K6(int f) { this.f = f; } }
  static final class K7 implements Serializable { int f; K7() {} K7(int f) { this.f = f; } }
  static final class K8 implements Serializable { int f; K8() {} K8(int f) { this.f = f; } }
  static final class K9 implements Serializable { int f; K9() {} K9(int f) { this.f = f; } }
  static final class K10 implements Serializable { int f; K10() {} K10(int f) { this.f = f; } }
  static final class K11 implements Serializable { int f; K11() {} K11(int f) { this.f = f; } }
  static final class K12 implements Serializable { int f; K12() {} K12(int f) { this.f = f; } }
  static final class K13 implements Serializable { int f; K13() {} K13(int f) { this.f = f; } }
  static final class K14 implements Serializable { int f; K14() {} K14(int f) { this.f = f; } }
  static final class K15 implements Serializable { int f; K15() {} K15(int f) { this.f = f; } }
  static final class K16 implements Serializable { int f; K16() {} K16(int f) { this.f = f; } }

  /** A writer for vectors that are not simply writeObject(value). */
  interface Writer {
    void write(Hessian2Output out) throws Exception;
  }

  static final Map<String, Object> VALUES = new LinkedHashMap<>();
  static final Map<String, Writer> WRITERS = new LinkedHashMap<>();

  static String repeat(String s, int n) {
    return s.repeat(n);
  }

  static byte[] bytes(int n) {
    byte[] b = new byte[n];
    for (int i = 0; i < n; i++) b[i] = (byte) (i * 7);
    return b;
  }

  static void cases() {
    VALUES.put("null", null);
    VALUES.put("true", true);
    VALUES.put("false", false);
    int[] ints = {0, -16, 47, 48, -17, -2048, 2047, 2048, -2049, -262144, 262143, 262144,
        Integer.MAX_VALUE, Integer.MIN_VALUE};
    for (int v : ints) VALUES.put("int " + v, v);
    long[] longs = {0, -8, 15, 16, -9, -2048, 2047, 2048, -262144, 262143, 262144,
        Integer.MAX_VALUE, Integer.MIN_VALUE, 1L << 31, (1L << 53) - 1, Long.MAX_VALUE,
        Long.MIN_VALUE};
    for (long v : longs) VALUES.put("long " + v, v);
    double[] doubles = {0.0, 1.0, -128.0, 127.0, -32768.0, 32767.0, 32768.0, 12.25, 0.001,
        -1.5, 2.1, 1e300, 0.1 + 0.2, 2147483.647, 0.009, -0.5, 1e-300,
        Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY};
    for (double v : doubles) VALUES.put("double " + v, v);
    long[] dates = {0, 894621091000L, 894621060000L, -60000, -1, 4102444800000L};
    for (long v : dates) VALUES.put("date " + v, new Date(v));
    VALUES.put("string empty", "");
    VALUES.put("string hello", "hello");
    VALUES.put("string 31", repeat("a", 31));
    VALUES.put("string 32", repeat("a", 32));
    VALUES.put("string 1023", repeat("b", 1023));
    VALUES.put("string 1024", repeat("c", 1024));
    VALUES.put("string 32768", repeat("x", 0x8000));
    VALUES.put("string 32769", repeat("y", 0x8001));
    VALUES.put("string cjk 70000", repeat("\u4e2d", 70000));
    VALUES.put("string latin", "h\u00e9llo w\u00f6rld");
    VALUES.put("string nul", "\u0000");
    VALUES.put("string emoji", "a\ud83d\ude00b");
    VALUES.put("string emoji at chunk end", repeat("a", 0x7fff) + "\ud83d\ude00b");
    VALUES.put("string lone surrogate", "x\ud800");
    int[] sizes = {0, 3, 15, 16, 1023, 1024, 4093, 4094, 10000, 70000};
    for (int n : sizes) VALUES.put("binary " + n, bytes(n));
    VALUES.put("list empty", new ArrayList<>());
    VALUES.put("list ints", new ArrayList<>(List.of(1, 2, 3)));
    VALUES.put("list 8", new ArrayList<>(List.of(1, 2, 3, 4, 5, 6, 7, 8)));
    VALUES.put("list mixed", new ArrayList<>(Arrays.asList("a", 1, 2L, 3.5, null, true)));
    VALUES.put("list nested", new ArrayList<>(List.of(new ArrayList<>(List.of(new ArrayList<>())))));
    VALUES.put("int[]", new int[] {1, 2, 3});
    VALUES.put("int[] 8", new int[] {1, 2, 3, 4, 5, 6, 7, 8});
    VALUES.put("String[]", new String[] {"a", "b"});
    VALUES.put("long[]", new long[] {1L, 2L});
    VALUES.put("Object[]", new Object[] {"a", 1});
    ArrayList<Object> twoArrays = new ArrayList<>();
    twoArrays.add(new int[] {0, 1});
    twoArrays.add(new int[] {2, 3});
    VALUES.put("type ref", twoArrays);
    VALUES.put("map empty", new HashMap<>());
    HashMap<Object, Object> intKeys = new HashMap<>();
    intKeys.put(1, "fee");
    intKeys.put(16, "fie");
    intKeys.put(256, "foe");
    VALUES.put("map int keys", intKeys);
    LinkedHashMap<String, Object> attachments = new LinkedHashMap<>();
    attachments.put("path", "com.example.DemoService");
    attachments.put("dubbo.tag", "feature-login");
    attachments.put("timeout", "3000");
    VALUES.put("map linked", attachments);
    TreeMap<String, Object> tree = new TreeMap<>();
    tree.put("a", 1);
    tree.put("b", new ArrayList<>(List.of("x")));
    VALUES.put("map tree", tree);
    HashMap<String, Object> single = new HashMap<>();
    single.put("k", "v");
    VALUES.put("map single", single);
    VALUES.put("object car", new Car("red", "corvette"));
    VALUES.put("object cars", new ArrayList<>(List.of(new Car("red", "corvette"),
        new Car("green", "civic"))));
    VALUES.put("object nulls", new Car(null, null));
    VALUES.put("enum", Color.GREEN);
    Holder holder = new Holder();
    holder.name = "holder";
    holder.items = new ArrayList<>(List.of("i", 2));
    holder.props = new HashMap<>(Map.of("p", "q"));
    holder.car = new Car("blue", "beetle");
    holder.id = 1234567890123L;
    holder.score = 99.5;
    holder.flag = true;
    holder.when = new Date(894621091000L);
    holder.blob = bytes(20);
    holder.numbers = new int[] {7, 8};
    VALUES.put("object holder", holder);
    VALUES.put("object 17 classes", new ArrayList<>(List.of(new K0(0), new K1(1), new K2(2),
        new K3(3), new K4(4), new K5(5), new K6(6), new K7(7), new K8(8), new K9(9), new K10(10),
        new K11(11), new K12(12), new K13(13), new K14(14), new K15(15), new K16(16),
        new K0(100))));
    LinkedNode node = new LinkedNode();
    node.head = 1;
    node.tail = node;
    VALUES.put("object self ref", node);
    ArrayList<Object> shared = new ArrayList<>();
    shared.add(single);
    shared.add(single);
    VALUES.put("ref shared map", shared);
    ArrayList<Object> selfList = new ArrayList<>();
    selfList.add(selfList);
    VALUES.put("ref self list", selfList);
    HashMap<String, Object> selfMap = new HashMap<>();
    selfMap.put("me", selfMap);
    VALUES.put("ref self map", selfMap);
    IllegalStateException boom = new IllegalStateException("boom");
    boom.setStackTrace(new StackTraceElement[] {
        new StackTraceElement("com.example.Demo", "call", "Demo.java", 42)});
    VALUES.put("exception", boom);
    VALUES.put("BigDecimal", new java.math.BigDecimal("1.50"));
    VALUES.put("Float", 1.5f);
    VALUES.put("Short", (short) 7);
    VALUES.put("Byte", (byte) 7);
    VALUES.put("Character", 'c');

    VALUES.put("list variable", new ArrayList<>(List.of(1, 2)));
    WRITERS.put("list variable", (out) -> {
      out.writeListBegin(-1, null);
      out.writeInt(1);
      out.writeInt(2);
      out.writeListEnd();
    });
    VALUES.put("list variable typed", new int[] {1, 2});
    WRITERS.put("list variable typed", (out) -> {
      out.writeListBegin(-1, "[int");
      out.writeInt(1);
      out.writeInt(2);
      out.writeListEnd();
    });
  }

  static String hex(byte[] data) {
    StringBuilder sb = new StringBuilder(data.length * 2);
    for (byte b : data) sb.append(String.format("%02x", b & 0xff));
    return sb.toString();
  }

  static byte[] unhex(String s) {
    byte[] out = new byte[s.length() / 2];
    for (int i = 0; i < out.length; i++) {
      out[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
    }
    return out;
  }

  static byte[] write(String name) throws Exception {
    ByteArrayOutputStream bos = new ByteArrayOutputStream();
    Hessian2Output out = new Hessian2Output(bos);
    Writer writer = WRITERS.get(name);
    if (writer != null) {
      writer.write(out);
    } else {
      out.writeObject(VALUES.get(name));
    }
    out.close();
    return bos.toByteArray();
  }

  /** A type-exact description of a value graph (cycles as back references). */
  static String describe(Object value, IdentityHashMap<Object, Integer> seen) throws Exception {
    if (value == null) return "null";
    Class<?> cls = value.getClass();
    if (value instanceof String s) return "String(" + escape(s) + ")";
    if (value instanceof Number || value instanceof Boolean || value instanceof Character) {
      return cls.getSimpleName() + "(" + value + ")";
    }
    if (value instanceof Date d) return "Date(" + d.getTime() + ")";
    if (value instanceof Enum<?> e) return cls.getName() + "." + e.name();
    if (value instanceof java.math.BigDecimal b) return "BigDecimal(" + b.toPlainString() + ")";
    if (value instanceof Throwable t) {
      return cls.getName() + "(" + escape(String.valueOf(t.getMessage())) + ", cause="
          + (t.getCause() == null ? "none" : describe(t.getCause(), seen)) + ", trace="
          + Arrays.toString(t.getStackTrace()) + ")";
    }
    if (cls == byte[].class) return "byte[](" + hex((byte[]) value) + ")";
    Integer ref = seen.get(value);
    if (ref != null) return "#" + ref;
    seen.put(value, seen.size());
    StringBuilder sb = new StringBuilder();
    if (cls.isArray()) {
      sb.append(cls.getComponentType().getName()).append("[](");
      for (int i = 0; i < Array.getLength(value); i++) {
        sb.append(describe(Array.get(value, i), seen)).append(", ");
      }
      return sb.append(")").toString();
    }
    if (value instanceof List<?> list) {
      sb.append(cls.getName()).append("(");
      for (Object item : list) sb.append(describe(item, seen)).append(", ");
      return sb.append(")").toString();
    }
    if (value instanceof Map<?, ?> map) {
      sb.append(cls.getName()).append("{");
      List<String> entries = new ArrayList<>();
      for (Map.Entry<?, ?> e : map.entrySet()) {
        entries.add(describe(e.getKey(), seen) + ": " + describe(e.getValue(), seen));
      }
      if (!(map instanceof LinkedHashMap) && !(map instanceof TreeMap)) entries.sort(null);
      return sb.append(String.join(", ", entries)).append("}").toString();
    }
    sb.append(cls.getName()).append("{");
    for (Class<?> c = cls; c != null && c != Object.class; c = c.getSuperclass()) {
      for (Field f : c.getDeclaredFields()) {
        if (Modifier.isStatic(f.getModifiers()) || Modifier.isTransient(f.getModifiers())) continue;
        f.setAccessible(true);
        sb.append(f.getName()).append("=").append(describe(f.get(value), seen)).append(", ");
      }
    }
    return sb.append("}").toString();
  }

  static String escape(String s) {
    StringBuilder sb = new StringBuilder();
    for (char c : s.toCharArray()) {
      if (c < 0x20 || c > 0x7e) sb.append(String.format("\\u%04x", (int) c));
      else sb.append(c);
    }
    return sb.length() > 200 ? sb.substring(0, 100) + "...(" + s.length() + ")" + s.hashCode()
        : sb.toString();
  }

  static String describe(Object value) throws Exception {
    return describe(value, new IdentityHashMap<>());
  }

  public static void main(String[] args) throws Exception {
    cases();
    StringBuilder out = new StringBuilder();
    for (String name : VALUES.keySet()) {
      try {
        out.append("V\t").append(name).append("\t").append(hex(write(name))).append("\n");
      } catch (Throwable t) {
        out.append("E\t").append(name).append("\t").append(oneLine(t)).append("\n");
      }
    }
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    String line;
    while ((line = in.readLine()) != null) {
      if (line.isEmpty()) continue;
      String[] parts = line.split("\t", 2);
      String name = parts[0];
      try {
        if (!VALUES.containsKey(name)) throw new IllegalArgumentException("unknown case " + name);
        Hessian2Input input = new Hessian2Input(new ByteArrayInputStream(unhex(parts[1])));
        Object got = input.readObject();
        String want = describe(VALUES.get(name));
        String have = describe(got);
        if (want.equals(have)) {
          out.append("C\t").append(name).append("\tOK\n");
        } else {
          out.append("C\t").append(name).append("\tFAIL\twant ").append(want).append(" got ")
              .append(have).append("\n");
        }
      } catch (Throwable t) {
        out.append("C\t").append(name).append("\tFAIL\t").append(oneLine(t)).append("\n");
      }
    }
    System.out.print(out);
    System.out.flush();
  }

  static String oneLine(Throwable t) {
    StringBuilder sb = new StringBuilder(t.toString());
    for (Throwable c = t.getCause(); c != null && c != t; c = c.getCause()) {
      sb.append(" <- ").append(c);
    }
    return sb.toString().replace('\n', ' ').replace('\t', ' ');
  }
}
